"""Password reset and email verification by mail, through a real SMTP server the tests start.

Every test follows the link in the message it received, as a person would.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from app.extensions import db, limiter
from app.models import OutboxMessage, User
from tests.helpers import PASSWORD, assert_problem, free_port, link_in, login, parts, signed_in, token_of

NEW_PASSWORD = "N3wPassword"


def register(client, email: str = "ann@example.com", **kwargs):
    return client.post("/api/users", json={"email": email, "name": "Ann Example", "password": PASSWORD},
                       **kwargs)


def user_count(app) -> int:
    with app.app_context():
        return db.session.query(User).count()


# ---- verification ---------------------------------------------------------------------


def test_registration_mails_a_verification_link_that_verifies_the_email(mail_app):
    app = mail_app()
    client = app.test_client()
    response = register(client, headers={"Host": "evil.example"})
    assert response.status_code == 201
    assert response.get_json()["email_verified"] is False

    [message] = mail_app.box.to("ann@example.com")
    assert message["Subject"] == "Confirm your email address"
    assert set(parts(message)) == {"text/plain", "text/html"}
    link = link_in(message, "/verify-email")  # from PUBLIC_BASE_URL, never the request's Host
    assert "evil.example" not in str(message)

    assert client.post("/api/auth/verify-email", json={"token": token_of(link)}).status_code == 204
    me = client.get("/api/users/me", headers=signed_in(client, "ann@example.com")).get_json()
    assert me["email_verified"] is True
    assert client.post("/api/auth/verify-email", json={"token": token_of(link)}).status_code == 204  # idempotent


@pytest.mark.parametrize("token", ["", "garbage", "x" * 2000, 5, None])
def test_a_bad_verification_token_is_400_problem_json(mail_app, token):
    client = mail_app().test_client()
    response = client.post("/api/auth/verify-email", json={"token": token})
    assert response.status_code in (400, 422)
    assert_problem(response, response.status_code)


def test_a_tampered_verification_token_is_400(mail_app):
    app = mail_app()
    client = app.test_client()
    register(client)
    token = token_of(link_in(mail_app.box.messages[0], "/verify-email"))
    body = assert_problem(client.post("/api/auth/verify-email", json={"token": token[:-2] + "xx"}), 400)
    assert "invalid" in body["detail"]


def test_email_verified_is_shown_only_to_the_user_and_admins(mail_app, make_user):
    client = mail_app().test_client()
    user_id = register(client).get_json()["id"]
    other = make_user()
    seen = client.get(f"/api/users/{user_id}", headers=other.headers).get_json()
    assert "email_verified" not in seen and "email" not in seen


def test_changing_the_email_needs_the_current_password_and_resets_verification(mail_app):
    app = mail_app()
    client = app.test_client()
    user_id = register(client).get_json()["id"]
    client.post("/api/auth/verify-email", json={"token": token_of(link_in(mail_app.box.messages[0], "/verify-email"))})
    headers = signed_in(client, "ann@example.com")

    refused = client.patch(f"/api/users/{user_id}", json={"email": "ann2@example.com"}, headers=headers)
    assert "current_password" in assert_problem(refused, 422)["errors"]
    changed = client.patch(f"/api/users/{user_id}", headers=headers,
                           json={"email": "ann2@example.com", "current_password": PASSWORD})
    assert changed.status_code == 200, changed.text
    assert changed.get_json()["email_verified"] is False

    [message] = mail_app.box.to("ann2@example.com")
    assert client.post("/api/auth/verify-email", json={"token": token_of(link_in(message, "/verify-email"))}
                       ).status_code == 204
    assert client.get("/api/users/me", headers=headers).get_json()["email_verified"] is True


def test_an_old_address_verification_link_cannot_verify_the_new_address(mail_app):
    app = mail_app()
    client = app.test_client()
    user_id = register(client).get_json()["id"]
    old_link = link_in(mail_app.box.messages[0], "/verify-email")
    headers = signed_in(client, "ann@example.com")
    client.patch(f"/api/users/{user_id}", headers=headers, json={"email": "ann2@example.com",
                                                                 "current_password": PASSWORD})
    assert_problem(client.post("/api/auth/verify-email", json={"token": token_of(old_link)}), 400)
    assert client.get("/api/users/me", headers=headers).get_json()["email_verified"] is False


def test_resend_mails_a_new_link_until_the_email_is_verified(mail_app):
    app = mail_app()
    client = app.test_client()
    register(client)
    headers = signed_in(client, "ann@example.com")
    response = client.post("/api/auth/verify-email/resend", headers=headers)
    assert response.status_code == 202 and response.get_json()["status"] == "accepted"
    assert len(mail_app.box.to("ann@example.com")) == 2
    link = link_in(mail_app.box.messages[-1], "/verify-email")
    assert client.post("/api/auth/verify-email", json={"token": token_of(link)}).status_code == 204
    assert client.post("/api/auth/verify-email/resend", headers=headers).status_code == 202
    assert len(mail_app.box.to("ann@example.com")) == 2  # verified: nothing more to send


def test_resend_needs_a_token(mail_app):
    assert_problem(mail_app().test_client().post("/api/auth/verify-email/resend"), 401)


def test_required_verification_refuses_writes_until_the_email_is_verified(mail_app):
    app = mail_app(REQUIRE_VERIFIED_EMAIL=True)
    client = app.test_client()
    register(client)
    headers = signed_in(client, "ann@example.com")
    post = {"title": "Hello", "body": "World"}
    body = assert_problem(client.post("/api/posts", json=post, headers=headers), 403)
    assert "Verify your email" in body["detail"]
    link = link_in(mail_app.box.messages[0], "/verify-email")
    assert client.post("/api/auth/verify-email", json={"token": token_of(link)}).status_code == 204
    assert client.post("/api/posts", json=post, headers=headers).status_code == 201


def test_unverified_accounts_write_when_verification_is_not_required(mail_app):
    client = mail_app().test_client()
    register(client)
    headers = signed_in(client, "ann@example.com")
    assert client.post("/api/posts", json={"title": "Hello", "body": "World"}, headers=headers).status_code == 201


# ---- password reset -------------------------------------------------------------------


def test_a_reset_link_sets_a_new_password_once_and_ends_every_session(mail_app, make_user):
    app = mail_app()
    client = app.test_client()
    person = make_user()
    response = client.post("/api/auth/password-reset", json={"email": person.email.upper()},
                           headers={"Host": "evil.example"})
    assert response.status_code == 202
    [message] = mail_app.box.to(person.email)
    assert message["Subject"] == "Reset your password" and set(parts(message)) == {"text/plain", "text/html"}
    token = token_of(link_in(message, "/reset-password"))

    confirm = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert confirm.status_code == 204
    assert_problem(client.get("/api/users/me", headers=person.headers), 401)
    assert_problem(login(client, person.email), 401)
    assert login(client, person.email, NEW_PASSWORD).status_code == 200

    again = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": "An0therPassword"})
    assert "invalid" in assert_problem(again, 400)["detail"]
    assert login(client, person.email, NEW_PASSWORD).status_code == 200


def test_the_answer_is_the_same_for_unknown_and_deactivated_accounts_and_nothing_is_sent(mail_app, make_user):
    app = mail_app()
    client = app.test_client()
    known, inactive = make_user(), make_user(is_active=False)
    answers = [client.post("/api/auth/password-reset", json={"email": email})
               for email in (known.email, "nobody@example.com", inactive.email)]
    assert {a.status_code for a in answers} == {202}
    assert len({a.get_data() for a in answers}) == 1
    assert [m["X-Envelope-To"] for m in mail_app.box.messages] == [known.email]


def test_a_reset_link_is_void_once_the_password_changed_otherwise(mail_app, make_user):
    app = mail_app()
    client = app.test_client()
    person = make_user()
    client.post("/api/auth/password-reset", json={"email": person.email})
    token = token_of(link_in(mail_app.box.messages[0], "/reset-password"))
    changed = client.patch(f"/api/users/{person.id}", headers=person.headers,
                           json={"password": NEW_PASSWORD, "current_password": PASSWORD})
    assert changed.status_code == 200
    response = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": "An0therPassword"})
    assert_problem(response, 400)
    assert login(client, person.email, NEW_PASSWORD).status_code == 200


def test_a_reset_link_expires_after_password_reset_minutes(mail_app, make_user):
    app = mail_app(PASSWORD_RESET_MINUTES=0)
    client = app.test_client()
    person = make_user()
    client.post("/api/auth/password-reset", json={"email": person.email})
    token = token_of(link_in(mail_app.box.messages[0], "/reset-password"))
    time.sleep(2)  # older than 0 minutes, in whole seconds
    response = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert_problem(response, 400)
    assert login(client, person.email).status_code == 200


def test_a_weak_new_password_is_422_and_the_link_still_works(mail_app, make_user):
    app = mail_app()
    client = app.test_client()
    person = make_user()
    client.post("/api/auth/password-reset", json={"email": person.email})
    token = token_of(link_in(mail_app.box.messages[0], "/reset-password"))
    weak = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": "weak"})
    assert "password" in assert_problem(weak, 422)["errors"]
    assert client.post("/api/auth/password-reset/confirm",
                       json={"token": token, "password": NEW_PASSWORD}).status_code == 204


def test_a_reset_also_verifies_the_email_it_reached(mail_app, make_user):
    app = mail_app()
    client = app.test_client()
    person = make_user()
    client.post("/api/auth/password-reset", json={"email": person.email})
    token = token_of(link_in(mail_app.box.messages[0], "/reset-password"))
    client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    me = client.get("/api/users/me", headers=signed_in(client, person.email, NEW_PASSWORD)).get_json()
    assert me["email_verified"] is True


@pytest.mark.parametrize("body", [{"token": "garbage", "password": NEW_PASSWORD}])
def test_a_bad_reset_token_is_400_problem_json(mail_app, body):
    assert_problem(mail_app().test_client().post("/api/auth/password-reset/confirm", json=body), 400)


def test_reset_requests_are_limited_per_ip_and_per_email(app, mail_app, make_user):
    limited = mail_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://", RATELIMIT_ACCOUNT_MAIL="2/hour")
    try:
        client = limited.test_client()
        person = make_user()

        def ask(email: str, ip: str):
            return client.post("/api/auth/password-reset", json={"email": email}, environ_base={"REMOTE_ADDR": ip})

        assert [ask(person.email, f"203.0.113.{n}").status_code for n in range(3)] == [202, 202, 429]
        assert [ask(f"x{n}@example.com", "198.51.100.5").status_code for n in range(3)] == [202, 202, 429]
        assert len(mail_app.box.to(person.email)) == 2
    finally:
        limiter.reset()
        limiter.init_app(app)


# ---- the mail server is down: the answers do not change --------------------------------


@pytest.fixture
def no_mail_server(make_app):
    return make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port(), MAIL_TIMEOUT=2)


def queued(app) -> list[OutboxMessage]:
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_registration_with_the_mail_server_down_is_201_and_its_message_waits(app, no_mail_server):
    client = no_mail_server.test_client()
    response = register(client)
    assert response.status_code == 201, response.text
    assert user_count(app) == 1
    [message] = queued(app)
    assert (message.recipient, message.template, message.status) == ("ann@example.com", "verify_email", "waiting")


def test_a_reset_with_the_mail_server_down_is_202_for_known_and_unknown_emails(app, no_mail_server, make_user):
    client = no_mail_server.test_client()
    person = make_user()
    known = client.post("/api/auth/password-reset", json={"email": person.email})
    unknown = client.post("/api/auth/password-reset", json={"email": "nobody@example.com"})
    assert (known.status_code, unknown.status_code) == (202, 202)
    assert known.get_data() == unknown.get_data()
    assert [m.recipient for m in queued(app)] == [person.email]


def test_an_email_change_with_the_mail_server_down_is_made_and_its_message_waits(app, no_mail_server, make_user):
    client = no_mail_server.test_client()
    person = make_user(name="Before")
    response = client.patch(f"/api/users/{person.id}", headers=person.headers,
                            json={"email": "moved@example.com", "current_password": PASSWORD, "name": "Moved"})
    assert response.status_code == 200, response.text
    assert [m.recipient for m in queued(app)] == ["moved@example.com"]
