"""Budgets that only the account's owner can spend, and that end with the credentials (issue 26,
items 2-5, 11 and 13): verification mail, per-user limits, the owner's own password checks,
device tokens, and guesses counted before they are judged."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.extensions import db, limiter
from app.models import AuthSession
from tests.helpers import PASSWORD, assert_problem, bearer, link_in, token_of

WRONG = "Wr0ngPassword"
NEW_PASSWORD = "N3wPassword"
BUDGETS = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_LOGIN": "1000/minute",
    "RATELIMIT_WRITE": "1000/minute",
    "RATELIMIT_ACCOUNT_MAIL": "1000/hour",
    "LOGIN_FAILURES_PER_EMAIL_IP": "3/minute",
    "LOGIN_FAILURES_PER_EMAIL": "5/minute",
    "LOGIN_FAILURES_PER_DEVICE": "3/minute",
    "LOGIN_FAILURES_PER_ACCOUNT_DEVICES": "4/minute",
}


@pytest.fixture
def limited(app, mail_app):
    """A test client of an app with these budgets (and the suite's SMTP server); `limited.box` is its mail."""

    def build(**overrides):
        return mail_app(**{**BUDGETS, **overrides}).test_client()

    build.box = mail_app.box  # type: ignore[attr-defined]
    yield build
    with contextlib.suppress(Exception):
        limiter.reset()
    limiter.init_app(app)  # the limiter is one object: give it back to the suite's app


def login(client, email: str, password: str = PASSWORD, *, ip: str = "198.51.100.1", device: str | None = None):
    body = {"email": email, "password": password}
    if device is not None:
        body["device_token"] = device
    return client.post("/api/auth/login", json=body, environ_base={"REMOTE_ADDR": ip})


def device_of(client, email: str, password: str = PASSWORD) -> str:
    response = login(client, email, password, ip="192.0.2.10")
    assert response.status_code == 200, response.text
    return response.get_json()["device_token"]


def lock_out_strangers(client, email: str) -> None:
    """Strangers spend the account's budget for clients without a device."""
    for n in range(5):
        login(client, email, WRONG, ip=f"203.0.113.{n}")
    assert_problem(login(client, email, ip="203.0.113.250"), 429)


def change_email(client, person, email: str, ip: str = "198.51.100.1"):
    return client.patch(f"/api/users/{person.id}", json={"email": email, "current_password": person.password},
                        headers=person.headers, environ_base={"REMOTE_ADDR": ip})


# ---- item 2: verification mail spends one budget per account and per address ------------------


def test_email_changes_and_resends_share_the_accounts_mail_budget(limited, make_user):
    client = limited(RATELIMIT_ACCOUNT_MAIL="3/hour")
    person = make_user()
    assert client.post("/api/auth/verify-email/resend", headers=person.headers).status_code == 202
    assert change_email(client, person, "victim-1@example.com").status_code == 200
    assert change_email(client, person, "victim-2@example.com").status_code == 200
    refused = change_email(client, person, "victim-3@example.com")
    assert "verification emails" in assert_problem(refused, 429)["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert client.get(f"/api/users/{person.id}", headers=person.headers).get_json()["email"] == "victim-2@example.com"
    assert limited.box.to("victim-3@example.com") == []
    assert_problem(client.post("/api/auth/verify-email/resend", headers=person.headers), 429)


def test_an_address_receives_no_more_than_its_budget_whichever_accounts_ask(limited, make_user):
    client = limited(RATELIMIT_ACCOUNT_MAIL="2/hour")
    first, second, third = make_user(), make_user(), make_user()
    assert change_email(client, first, "victim@example.com").status_code == 200
    assert change_email(client, first, "first-again@example.com").status_code == 200
    assert change_email(client, second, "victim@example.com").status_code == 200
    assert change_email(client, second, "second-again@example.com").status_code == 200
    assert_problem(change_email(client, third, "victim@example.com"), 429)  # a fresh account, a spent address
    assert len(limited.box.to("victim@example.com")) == 2


# ---- item 3: only a live session spends its user's limits ----------------------------------------


def test_a_spent_refresh_token_replayed_does_not_spend_its_owners_write_limit(limited, make_user):
    client = limited(RATELIMIT_WRITE="5/minute", RATELIMIT_LOGIN="1000/minute")
    person = make_user()
    first = login(client, person.email).get_json()
    assert client.post("/api/auth/refresh", headers=bearer(first["refresh_token"])).status_code == 200
    replayed = client.post("/api/auth/refresh", headers=bearer(first["refresh_token"]),
                           environ_base={"REMOTE_ADDR": "203.0.113.66"})
    assert_problem(replayed, 401)  # a spent refresh token: its session has ended, it is nobody's token
    for _ in range(8):
        client.post("/api/posts", json={"title": "t", "body": "b"}, headers=bearer(first["refresh_token"]),
                    environ_base={"REMOTE_ADDR": "203.0.113.66"})
    fresh = login(client, person.email).get_json()
    created = client.post("/api/posts", json={"title": "Still mine", "body": "x"},
                          headers=bearer(fresh["access_token"]))
    assert created.status_code == 201, created.text


def test_an_ended_sessions_access_token_counts_against_the_address(limited, make_user):
    client = limited(RATELIMIT_WRITE="3/minute")
    person = make_user()
    old = login(client, person.email).get_json()["access_token"]
    assert client.post("/api/auth/logout", headers=bearer(old)).status_code == 204
    statuses = [client.post("/api/posts", json={"title": "t", "body": "b"}, headers=bearer(old),
                            environ_base={"REMOTE_ADDR": "203.0.113.77"}).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]  # the address's budget, not the owner's
    fresh = bearer(login(client, person.email).get_json()["access_token"])
    assert client.post("/api/posts", json={"title": "t", "body": "b"}, headers=fresh).status_code == 201


def test_a_live_sessions_writes_count_against_its_user_from_any_address(limited, make_user):
    client = limited(RATELIMIT_WRITE="3/minute")
    person = make_user()
    for n in range(3):
        created = client.post("/api/posts", json={"title": "t", "body": "b"}, headers=person.headers,
                              environ_base={"REMOTE_ADDR": f"198.51.100.{n}"})
        assert created.status_code == 201
    assert_problem(client.post("/api/posts", json={"title": "t", "body": "b"}, headers=person.headers,
                               environ_base={"REMOTE_ADDR": "198.51.100.99"}), 429)


# ---- item 4: strangers' guesses do not lock the owner out ----------------------------------------


def test_the_signed_in_owner_changes_password_and_email_while_strangers_hold_the_budget(limited, make_user):
    client = limited()
    person = make_user()
    lock_out_strangers(client, person.email)
    changed = change_email(client, person, "owner-new@example.com")
    assert changed.status_code == 200, changed.text
    response = client.patch(f"/api/users/{person.id}", json={"password": NEW_PASSWORD,
                                                             "current_password": person.password},
                            headers=person.headers)
    assert response.status_code == 200, response.text


def test_a_completed_reset_clears_the_accounts_guessing_budgets(limited, make_user):
    client = limited()
    person = make_user()
    lock_out_strangers(client, person.email)
    assert client.post("/api/auth/password-reset", json={"email": person.email}).status_code == 202
    [message] = limited.box.to(person.email)
    token = token_of(link_in(message, "/reset-password"))
    confirm = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert confirm.status_code == 204
    assert login(client, person.email, NEW_PASSWORD, ip="198.51.100.200").status_code == 200  # a new device


# ---- item 5: device tokens end with the credentials, under one cap per account --------------------


def _password_change(client, person) -> None:
    response = client.patch(f"/api/users/{person.id}", json={"password": NEW_PASSWORD,
                                                             "current_password": person.password},
                            headers=person.headers)
    assert response.status_code == 200, response.text
    person.password = NEW_PASSWORD


def _reset(client, person, box) -> None:
    assert client.post("/api/auth/password-reset", json={"email": person.email}).status_code == 202
    token = token_of(link_in(box.to(person.email)[-1], "/reset-password"))
    assert client.post("/api/auth/password-reset/confirm",
                       json={"token": token, "password": NEW_PASSWORD}).status_code == 204
    person.password = NEW_PASSWORD


def _logout_all(client, person) -> None:
    assert client.post("/api/auth/logout-all", headers=person.headers).status_code == 204


@pytest.mark.parametrize("ending", [_password_change, _reset, _logout_all],
                         ids=["password change", "reset", "logout-all"])
def test_a_device_token_ends_with_the_credentials(limited, make_user, ending):
    client = limited()
    person = make_user()
    device = device_of(client, person.email)
    if ending is _reset:
        ending(client, person, limited.box)
    else:
        ending(client, person)
    lock_out_strangers(client, person.email)
    assert_problem(login(client, person.email, person.password, ip="192.0.2.10", device=device), 429)


def test_all_devices_of_an_account_share_one_cap(limited, make_user):
    client = limited()
    person = make_user()
    devices = [device_of(client, person.email) for _ in range(3)]
    judged = 0
    for device in devices:
        for _ in range(3):
            if login(client, person.email, WRONG, ip="192.0.2.10", device=device).status_code == 401:
                judged += 1
    assert judged == 4  # LOGIN_FAILURES_PER_ACCOUNT_DEVICES, not 3 devices x 3
    assert_problem(login(client, person.email, device=devices[0]), 429)


# ---- item 11: counted first, atomically, then judged ---------------------------------------------


def test_concurrent_wrong_passwords_are_all_counted_before_any_is_judged(limited, make_user):
    app_client = limited(BCRYPT_ROUNDS=10, LOGIN_FAILURES_PER_EMAIL_IP="100/minute",
                         LOGIN_FAILURES_PER_EMAIL="5/minute")
    app = app_client.application
    email = "nobody-at-all@example.com"  # an unknown email costs a bcrypt check at BCRYPT_ROUNDS too
    start = threading.Barrier(8)
    statuses: list[int] = []

    def guess(n: int) -> None:
        client = app.test_client()
        start.wait()
        statuses.append(login(client, email, WRONG, ip=f"203.0.113.{n}").status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 5 + [429] * 3


# ---- item 13: the small ones ----------------------------------------------------------------------


def test_the_mailed_links_pages_share_the_apis_per_address_budget(limited, make_user):
    client = limited(RATELIMIT_ACCOUNT_MAIL="2/hour")
    ip = {"REMOTE_ADDR": "203.0.113.40"}
    for _ in range(2):
        page = client.post("/reset-password", data={"token": "bad", "password": "x", "confirm": "x"},
                           environ_base=ip)
        assert page.status_code in (400, 422)
    refused = client.post("/reset-password", data={"token": "bad", "password": "x", "confirm": "x"},
                          environ_base=ip)
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert "Too many attempts" in refused.get_data(as_text=True)
    assert_problem(client.post("/api/auth/password-reset/confirm", json={"token": "bad", "password": NEW_PASSWORD},
                               environ_base=ip), 429)
    for _ in range(2):
        assert client.post("/verify-email", data={"token": "bad"}, environ_base=ip).status_code == 400
    assert client.post("/verify-email", data={"token": "bad"}, environ_base=ip).status_code == 429
    assert client.get("/verify-email?token=bad", environ_base=ip).status_code == 200  # opening a link is free


def test_an_unverified_account_may_fix_its_email_but_not_follow_or_rename(limited, make_user):
    client = limited(REQUIRE_VERIFIED_EMAIL=True)
    person, other = make_user(), make_user()
    assert_problem(client.put(f"/api/users/{other.id}/follow", headers=person.headers), 403)
    assert_problem(client.patch(f"/api/users/{person.id}", json={"name": "New Name"}, headers=person.headers), 403)
    assert change_email(client, person, "typo-fixed@example.com").status_code == 200


def test_refreshing_never_moves_a_session_past_its_maximum_lifetime(limited, make_user):
    client = limited()
    person = make_user()
    pair = login(client, person.email).get_json()
    renewed = client.post("/api/auth/refresh", headers=bearer(pair["refresh_token"]))
    assert renewed.status_code == 200
    with client.application.app_context():
        db.session.execute(update(AuthSession).where(AuthSession.user_id == person.id)
                           .values(created_at=datetime.now(UTC) - timedelta(days=91)))
        db.session.commit()
    refused = client.post("/api/auth/refresh", headers=bearer(renewed.get_json()["refresh_token"]))
    assert "maximum lifetime" in assert_problem(refused, 401)["detail"]
    assert_problem(client.get("/api/users/me", headers=bearer(renewed.get_json()["access_token"])), 401)


# ---- issue 27, point 3: one transaction per request -----------------------------------------------


def test_concurrent_uses_of_one_reset_link_give_one_204_and_the_rest_400(limited, make_user):
    """The row's version lets exactly one of them write; the others learn the link is used up."""
    client = limited(LOGIN_FAILURES_PER_EMAIL_IP="100/minute", LOGIN_FAILURES_PER_EMAIL="100/minute")
    person = make_user()
    assert client.post("/api/auth/password-reset", json={"email": person.email}).status_code == 202
    token = token_of(link_in(limited.box.to(person.email)[-1], "/reset-password"))
    app = client.application
    start = threading.Barrier(6)
    statuses: list[int] = []

    def confirm(n: int) -> None:
        own = app.test_client()
        start.wait()
        body = {"token": token, "password": f"{NEW_PASSWORD}{n}"}
        statuses.append(own.post("/api/auth/password-reset/confirm", json=body,
                                 environ_base={"REMOTE_ADDR": f"198.51.100.{n}"}).status_code)

    threads = [threading.Thread(target=confirm, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [204] + [400] * 5
    signed_in = [n for n in range(6) if login(client, person.email, f"{NEW_PASSWORD}{n}").status_code == 200]
    assert len(signed_in) == 1  # the one password that was set
