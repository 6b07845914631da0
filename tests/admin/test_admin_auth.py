"""Who gets into the admin, for how long, and how the admin and the API stay apart."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import TimestampSigner

from app.extensions import db, limiter
from app.models import Role
from app.services import users
from tests.admin_support import (
    assert_admin_html,
    assert_redirects_to_login,
    csrf_token,
    page_token,
    sign_in,
    signed_in,
    submit,
    text_of,
)
from tests.helpers import assert_problem, production_settings

ADMIN_PAGES = ["/admin", "/admin/", "/admin/users", "/admin/users/{user}", "/admin/users/{user}/delete",
               "/admin/posts", "/admin/posts/{post}", "/admin/posts/{post}/delete"]


@pytest.fixture
def some_post(make_post, user) -> int:
    return make_post(user, "A post")


def _session_cookie(client):
    return client.get_cookie("admin_session", path="/admin")


@pytest.mark.parametrize("template", ADMIN_PAGES)
def test_anonymous_visitor_is_sent_to_login_with_the_page_to_return_to(client, user, some_post, template):
    path = template.format(user=user.id, post=some_post)
    response = client.get(path)
    assert_redirects_to_login(response)
    assert "next=" in response.headers["Location"]
    assert "A post" not in text_of(response) and user.email not in text_of(response)


def test_anonymous_post_with_a_valid_csrf_token_changes_nothing(app, client, user):
    token = page_token(client, "/admin/login")
    response = client.post(f"/admin/users/{user.id}/active", data={"active": "0", "csrf_token": token})
    assert_redirects_to_login(response)
    with app.app_context():
        assert users.get_user(user.id).is_active


def test_login_page_is_a_form_with_a_csrf_token(client):
    body = assert_admin_html(client.get("/admin/login"), 200)
    assert 'name="email"' in body and 'name="password"' in body
    assert csrf_token(body)


def test_admin_signs_in_and_sees_the_dashboard(client, admin):
    response = sign_in(client, admin)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    dashboard = client.get("/admin/", follow_redirects=True)
    body = assert_admin_html(dashboard, 200)
    assert "Dashboard" in body and f"Signed in as {admin.email}." in body


def test_session_cookie_is_httponly_lax_scoped_to_admin_and_expires_in_eight_hours(client, admin):
    response = sign_in(client, admin)
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("admin_session="))
    attributes = [part.strip().lower() for part in header.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/admin" in attributes
    assert "secure" not in attributes  # only in production, over HTTPS
    expires = parsedate_to_datetime(next(a for a in header.split(";") if "expires=" in a.lower()).split("=", 1)[1])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=8))) < timedelta(minutes=2)


def test_session_cookie_is_secure_in_production(make_app, admin):
    app = make_app(**production_settings(RATELIMIT_ENABLED=False))
    client = app.test_client()
    response = client.get("/admin/login")
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("admin_session="))
    assert "secure" in [part.strip().lower() for part in header.split(";")]


@pytest.mark.parametrize("case", ["wrong password", "unknown email", "inactive admin", "non-admin user",
                                  "password over 72 bytes"])
def test_every_failed_login_gets_the_same_message_and_no_session(client, make_user, case):
    admin = make_user(Role.ADMIN)
    inactive = make_user(Role.ADMIN, is_active=False)
    plain = make_user(Role.USER)
    email, password = {
        "wrong password": (admin.email, "Wr0ngPassword"),
        "unknown email": ("nobody@example.com", admin.password),
        "inactive admin": (inactive.email, inactive.password),
        "non-admin user": (plain.email, plain.password),
        "password over 72 bytes": (admin.email, "A1" + "é" * 40),
    }[case]
    token = page_token(client, "/admin/login")
    response = client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})
    body = assert_admin_html(response, 200)
    assert "Invalid credentials." in body
    assert "Dashboard" not in body
    assert_redirects_to_login(client.get("/admin/"))


def test_login_without_csrf_token_is_refused(client, admin):
    client.get("/admin/login")
    response = client.post("/admin/login", data={"email": admin.email, "password": admin.password})
    body = assert_admin_html(response, 400)
    assert "security token" in body
    assert_redirects_to_login(client.get("/admin/"))


@pytest.mark.parametrize(("email", "password", "message"), [
    ("", "Sup3rSecret", "This field is required."),
    ("a@example.com", "", "This field is required."),
    ("nul\x00@example.com", "Sup3rSecret", "Must not contain control characters."),
    ("x" * 300 + "@example.com", "Sup3rSecret", "Field cannot be longer than 254 characters."),
])
def test_bad_login_input_is_a_readable_message(client, email, password, message):
    token = page_token(client, "/admin/login")
    response = client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})
    assert message in assert_admin_html(response, 200)


@pytest.mark.parametrize(("target", "landing"), [
    ("/admin/users?role=admin", "/admin/users?role=admin"),
    ("/admin/posts", "/admin/posts"),
    ("https://evil.example/admin", "/admin/"),
    ("//evil.example/admin", "/admin/"),
    ("/\\evil.example", "/admin/"),
    ("/api/users", "/admin/"),
    ("/administrator", "/admin/"),
])
def test_after_login_only_admin_pages_are_followed(client, admin, target, landing):
    page = client.get("/admin/login", query_string={"next": target})
    response = client.post("/admin/login", data={"email": admin.email, "password": admin.password,
                                                  "csrf_token": csrf_token(text_of(page)), "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == landing


def test_login_starts_a_fresh_session_so_a_planted_token_dies(client, admin):
    before = page_token(client, "/admin/login")
    signed_in(client, admin)
    after = page_token(client, "/admin/")
    assert before != after
    response = client.post("/admin/logout", data={"csrf_token": before})
    assert_admin_html(response, 400)
    assert client.get("/admin/").status_code == 200  # still signed in: the old token did nothing


def test_logout_ends_the_session(client, admin):
    signed_in(client, admin)
    response = submit(client, "/admin/logout")
    assert_redirects_to_login(response)
    assert_redirects_to_login(client.get("/admin/"))
    assert "You have been signed out." in text_of(client.get("/admin/login"))


def test_logout_by_get_is_not_allowed(client, admin):
    signed_in(client, admin)
    assert_admin_html(client.get("/admin/logout"), 405)
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("change", ["deactivated", "demoted", "deleted"])
def test_admin_who_loses_the_role_is_signed_out_at_the_next_click(app, client, make_user, change):
    first, other = make_user(Role.ADMIN), make_user(Role.ADMIN)
    signed_in(client, first)
    with app.app_context():
        actor, target = users.get_user(other.id), users.get_user(first.id)
        if change == "deactivated":
            users.set_active(actor, target, False)
        elif change == "demoted":
            users.set_role(actor, target, Role.USER)
        else:
            users.delete_user(actor, target)
        db.session.commit()
    assert_redirects_to_login(client.get("/admin/users"))
    assert "Your admin session has ended" in text_of(client.get("/admin/login"))
    assert_redirects_to_login(client.get("/admin/users"))


def _cookie_signed_at(app, data: dict, when: float) -> str:
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)

    class SignedThen(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(when)

    serializer.signer = SignedThen
    return serializer.dumps(data)


def _live_session_id(app, client, admin) -> str:
    """The id of a real, live server-side session, taken from a signed-in cookie."""
    signed_in(client, admin)
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    session_id = serializer.loads(_session_cookie(client).value)["admin_session_id"]
    client.delete_cookie("admin_session", path="/admin")
    return session_id


def test_session_idle_longer_than_the_lifetime_is_refused(app, client, admin):
    session_id = _live_session_id(app, client, admin)
    stale = _cookie_signed_at(app, {"admin_session_id": session_id, "_permanent": True}, time.time() - 8 * 3600 - 60)
    client.set_cookie("admin_session", stale, path="/admin")
    assert_redirects_to_login(client.get("/admin/"))


def test_session_within_the_lifetime_works_and_is_refreshed(app, client, admin):
    session_id = _live_session_id(app, client, admin)
    recent = _cookie_signed_at(app, {"admin_session_id": session_id, "_permanent": True}, time.time() - 7 * 3600)
    client.set_cookie("admin_session", recent, path="/admin")
    response = client.get("/admin/")
    assert response.status_code == 200
    refreshed = _session_cookie(client).value
    assert refreshed != recent  # re-signed now: the idle clock restarts
    assert SecureCookieSessionInterface().get_signing_serializer(app).loads(refreshed, max_age=60)


def test_forged_session_cookie_is_ignored(app, client, admin):
    session_id = _live_session_id(app, client, admin)
    client.set_cookie("admin_session", f'{{"admin_session_id": "{session_id}"}}', path="/admin")
    assert_redirects_to_login(client.get("/admin/"))


@pytest.mark.parametrize("value", [1, "1", "0" * 32, None, ["x"]])
def test_a_signed_cookie_naming_no_live_session_is_refused(app, client, admin, value):
    """A cookie signed with the right key (as one from before sessions, with a user id) opens nothing."""
    cookie = _cookie_signed_at(app, {"admin_session_id": value, "admin_user_id": admin.id, "_permanent": True},
                               time.time())
    client.set_cookie("admin_session", cookie, path="/admin")
    assert_redirects_to_login(client.get("/admin/"))


def test_bearer_token_does_not_open_the_admin(client, admin):
    response = client.get("/admin/", headers=admin.headers)
    assert_redirects_to_login(response)
    response = client.post(f"/admin/users/{admin.id}/role", data={"role": "user"}, headers=admin.headers)
    assert response.status_code == 400  # no session, so no valid CSRF token
    assert "Dashboard" not in text_of(response)


def test_admin_session_cookie_does_not_authenticate_the_api(client, admin):
    signed_in(client, admin)
    cookie = _session_cookie(client)
    # A browser would not even send it (Path=/admin); sent by hand it is still no credential.
    for method, path in [("GET", "/api/users/me"), ("GET", "/api/users"), ("DELETE", f"/api/users/{admin.id}")]:
        response = client.open(path, method=method, headers={"Cookie": f"admin_session={cookie.value}"})
        assert_problem(response, 401)


def test_api_responses_never_set_the_admin_cookie(client, admin):
    signed_in(client, admin)
    response = client.get("/api/posts", headers={"Cookie": f"admin_session={_session_cookie(client).value}"})
    assert response.status_code == 200
    assert not any(h.startswith("admin_session=") for h in response.headers.getlist("Set-Cookie"))


def test_admin_login_is_rate_limited(app, make_app, admin):
    limited = make_app(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3/minute")
    try:
        client = limited.test_client()
        token = page_token(client, "/admin/login")
        for _ in range(3):
            response = client.post("/admin/login", data={"email": admin.email, "password": "Wr0ngPassword",
                                                         "csrf_token": token})
            assert response.status_code == 200
        response = client.post("/admin/login", data={"email": admin.email, "password": admin.password,
                                                     "csrf_token": token})
        body = assert_admin_html(response, 429)
        assert "Too many requests" in body
    finally:
        limiter.reset()
        limiter.init_app(app)  # the limiter is one object: give it back to the suite's app


def test_signed_in_admin_visiting_login_goes_to_the_dashboard(client, admin):
    signed_in(client, admin)
    response = client.get("/admin/login")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"

