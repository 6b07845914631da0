"""Admin page sessions end on the server: logout, a new password, demotion, deactivation,
"End all sessions", and an absolute lifetime. Reproduction 6 of issue 10."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuthSession, Role, User
from tests.admin_support import assert_admin_html, assert_redirects_to_login, sign_in, signed_in, submit, text_of
from tests.helpers import assert_problem

COOKIE = "admin_session"


def _cookie(client) -> str:
    return client.get_cookie(COOKIE, path="/admin").value


def _replay(app, cookie: str):
    """A second browser (or a thief) presenting a copy of the cookie."""
    other = app.test_client()
    other.set_cookie(COOKIE, cookie, path="/admin")
    return other.get("/admin/")


def test_a_copied_cookie_stops_working_after_logout(app, client, admin):
    signed_in(client, admin)
    copy = _cookie(client)
    assert _replay(app, copy).status_code == 200
    assert_redirects_to_login(submit(client, "/admin/logout"))
    assert_redirects_to_login(_replay(app, copy))


def test_a_password_change_ends_the_admin_session(app, client, admin):
    signed_in(client, admin)
    copy = _cookie(client)
    response = client.patch(f"/api/users/{admin.id}", headers=admin.headers,
                            json={"password": "N3wPassword", "current_password": admin.password})
    assert response.status_code == 200, response.text
    assert_redirects_to_login(client.get("/admin/"))
    assert_redirects_to_login(_replay(app, copy))


@pytest.mark.parametrize("change", [{"role": "user"}, {"is_active": False}])
def test_demotion_or_deactivation_ends_the_admin_session_for_good(app, client, make_user, change):
    target, actor = make_user(Role.ADMIN), make_user(Role.ADMIN)
    signed_in(client, target)
    copy = _cookie(client)
    assert client.patch(f"/api/users/{target.id}", headers=actor.headers, json=change).status_code == 200
    undo = {"role": "admin"} if "role" in change else {"is_active": True}
    assert client.patch(f"/api/users/{target.id}", headers=actor.headers, json=undo).status_code == 200
    assert_redirects_to_login(_replay(app, copy))  # restoring the account does not revive the session


def test_the_session_ends_after_its_absolute_lifetime_whatever_the_activity(app, client, admin):
    signed_in(client, admin)
    with app.app_context():
        row = db.session.scalar(select(AuthSession).where(AuthSession.user_id == admin.id,
                                                          AuthSession.kind == "admin"))
        assert abs(row.expires_at - row.created_at - timedelta(hours=12)) < timedelta(seconds=5)
    assert client.get("/admin/").status_code == 200
    with app.app_context():  # twelve hours later, however busy the admin was
        db.session.execute(update(AuthSession).where(AuthSession.kind == "admin")
                           .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
    assert_redirects_to_login(client.get("/admin/"))
    assert "Your admin session has ended" in text_of(client.get("/admin/login"))


def test_the_absolute_lifetime_is_configurable(make_app, admin):
    other = make_app(ADMIN_SESSION_MAX_HOURS=0)
    client = other.test_client()
    assert sign_in(client, admin).status_code == 302
    assert_redirects_to_login(client.get("/admin/"))


def test_end_all_sessions_on_the_user_page_ends_their_api_and_admin_sessions(app, client, make_user):
    admin, other_admin = make_user(Role.ADMIN), make_user(Role.ADMIN)
    victim_browser = signed_in(app.test_client(), other_admin)
    signed_in(client, admin)
    page = assert_admin_html(client.get(f"/admin/users/{other_admin.id}"), 200)
    assert "End all sessions" in page and "2 active" in page  # a token pair and the admin page

    response = submit(client, f"/admin/users/{other_admin.id}/sessions/end", follow=True)
    assert f"All sessions of {other_admin.email} were ended." in text_of(response)
    assert "0 active" in text_of(response)
    assert_problem(client.get("/api/users/me", headers=other_admin.headers), 401)
    assert_redirects_to_login(victim_browser.get("/admin/"))
    assert client.get("/admin/").status_code == 200  # the acting admin stays signed in
    assert client.get("/api/users/me", headers=admin.headers).status_code == 200


def test_end_all_sessions_without_the_csrf_token_ends_nothing(client, admin, user):
    signed_in(client, admin)
    response = client.post(f"/admin/users/{user.id}/sessions/end")
    assert response.status_code == 400
    assert client.get("/api/users/me", headers=user.headers).status_code == 200


def test_ending_ones_own_sessions_signs_one_out(client, admin):
    signed_in(client, admin)
    submit(client, f"/admin/users/{admin.id}/sessions/end")
    assert_redirects_to_login(client.get("/admin/"))
    assert_problem(client.get("/api/users/me", headers=admin.headers), 401)


def test_api_logout_all_ends_the_admin_page_sessions_too(app, client, admin):
    signed_in(client, admin)
    assert client.post("/api/auth/logout-all", headers=admin.headers).status_code == 204
    assert_redirects_to_login(client.get("/admin/"))


def test_admin_pages_show_whether_the_email_is_verified(app, client, admin, make_user):
    person = make_user()
    signed_in(client, admin)
    assert "unverified" in assert_admin_html(client.get(f"/admin/users/{person.id}"), 200)
    with app.app_context():
        db.session.get(User, person.id).email_verified = True
        db.session.commit()
    detail = assert_admin_html(client.get(f"/admin/users/{person.id}"), 200)
    assert ">verified<" in detail
    assert ">verified<" in assert_admin_html(client.get("/admin/users"), 200)
