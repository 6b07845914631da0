"""Password-guessing budgets that cannot be turned against the owner (issue 10, reproductions 7 and 8).

Wrong passwords count per (email, IP) and per email; a login that presents a device token
from an earlier successful login to that account is judged by that device's own budget.
"""

from __future__ import annotations

import contextlib
import uuid

import pytest

from app.extensions import limiter
from app.models import Role
from tests.admin_support import assert_admin_html, page_token
from tests.helpers import PASSWORD, assert_problem, free_port

BUDGETS = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_LOGIN": "1000/minute",  # the per-IP request limit is not what these tests are about
    "RATELIMIT_WRITE": "1000/minute",
    "LOGIN_FAILURES_PER_EMAIL_IP": "3/minute",
    "LOGIN_FAILURES_PER_EMAIL": "5/minute",
    "LOGIN_FAILURES_PER_DEVICE": "3/minute",
}
WRONG = "Wr0ngPassword"


@pytest.fixture
def throttled(app, make_app):
    def build(**overrides):
        return make_app(**{**BUDGETS, **overrides}).test_client()

    yield build
    with contextlib.suppress(Exception):  # a test may have pointed it at a storage that is down
        limiter.reset()
    limiter.init_app(app)  # the limiter is one object: give it back to the suite's app


def login(client, email: str, password: str = PASSWORD, ip: str = "198.51.100.1", device: str | None = None):
    body = {"email": email, "password": password}
    if device is not None:
        body["device_token"] = device
    return client.post("/api/auth/login", json=body, environ_base={"REMOTE_ADDR": ip})


def assert_locked(response) -> None:
    body = assert_problem(response, 429)
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert "failed password attempts" in body["detail"]


def guess_from_many_ips(client, email: str, count: int) -> None:
    for n in range(count):
        login(client, email, WRONG, ip=f"203.0.113.{n}")


def test_every_successful_login_returns_a_device_token(throttled, user):
    client = throttled()
    first, second = (login(client, user.email).get_json()["device_token"] for _ in range(2))
    assert first and second and first != second


def test_strangers_guessing_cannot_lock_the_owner_out_of_a_known_device(throttled, user):
    """Reproduction 7: anyone who knows the email used to lock its owner out for as long as they liked."""
    client = throttled()
    device = login(client, user.email, ip="192.0.2.10").get_json()["device_token"]
    guess_from_many_ips(client, user.email, 5)
    assert_locked(login(client, user.email, ip="192.0.2.10"))  # without its device token
    assert login(client, user.email, ip="192.0.2.10", device=device).status_code == 200
    assert_locked(login(client, user.email, ip="203.0.113.200"))  # the attacker stays bounded


def test_failures_per_email_bound_guessing_from_any_number_of_addresses(throttled, user):
    client = throttled()
    guess_from_many_ips(client, user.email, 5)
    assert_locked(login(client, user.email, WRONG, ip="203.0.113.99"))


def test_failures_per_email_and_ip_block_that_client_only(throttled, user):
    client = throttled()
    for _ in range(3):
        assert login(client, user.email, WRONG).status_code == 401
    assert_locked(login(client, user.email))
    assert login(client, user.email, ip="198.51.100.2").status_code == 200


def test_only_failures_count(throttled, user):
    client = throttled()
    statuses = {login(client, user.email).status_code for _ in range(10)}
    assert statuses == {200}


def test_a_device_has_its_own_budget(throttled, user):
    client = throttled()
    device = login(client, user.email).get_json()["device_token"]
    for _ in range(3):
        assert login(client, user.email, WRONG, device=device).status_code == 401
    assert_locked(login(client, user.email, device=device))
    assert login(client, user.email, ip="198.51.100.7").status_code == 200  # others' budgets untouched


@pytest.mark.parametrize("kind", ["another account's", "forged", "garbage"])
def test_a_device_token_of_another_account_or_forged_does_not_help(throttled, make_user, kind):
    victim, attacker = make_user(), make_user()
    client = throttled()
    own = login(client, attacker.email).get_json()["device_token"]
    device = {"another account's": own, "forged": own[:-3] + "AAA", "garbage": "x" * 40}[kind]
    guess_from_many_ips(client, victim.email, 5)
    assert_locked(login(client, victim.email, device=device))


def test_wrong_current_passwords_spend_the_signed_in_devices_budget_before_bcrypt(throttled, user):
    """Reproduction 8: `current_password` used to be a guessing channel 12x faster than login.
    The owner's session is their device: its wrong passwords spend its own budget."""
    client = throttled()
    change = {"password": "N3wPassword", "current_password": WRONG}
    for _ in range(3):
        response = client.patch(f"/api/users/{user.id}", json=change, headers=user.headers,
                                environ_base={"REMOTE_ADDR": "198.51.100.1"})
        assert "current_password" in assert_problem(response, 422)["errors"]
    blocked = client.patch(f"/api/users/{user.id}", json={**change, "current_password": PASSWORD},
                           headers=user.headers, environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert_locked(blocked)
    assert login(client, user.email).status_code == 200  # strangers' budgets untouched


def test_api_and_admin_logins_share_one_budget(throttled, make_user):
    admin = make_user(Role.ADMIN)
    client = throttled()
    for _ in range(2):
        assert login(client, admin.email, WRONG).status_code == 401
    token = page_token(client, "/admin/login")
    form = {"email": admin.email, "password": WRONG, "csrf_token": token}
    assert "Invalid credentials." in assert_admin_html(
        client.post("/admin/login", data=form, environ_base={"REMOTE_ADDR": "198.51.100.1"}), 200)
    assert_locked(login(client, admin.email))
    right = {**form, "password": admin.password}
    page = client.post("/admin/login", data=right, environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert "failed password attempts" in assert_admin_html(page, 429)


def test_the_admin_browser_keeps_a_device_cookie_that_beats_a_lockout(throttled, make_user):
    admin = make_user(Role.ADMIN)
    client = throttled()
    token = page_token(client, "/admin/login")
    form = {"email": admin.email, "password": admin.password, "csrf_token": token}
    signed = client.post("/admin/login", data=form)
    assert signed.status_code == 302
    cookie = next(h for h in signed.headers.getlist("Set-Cookie") if h.startswith("admin_device="))
    assert "HttpOnly" in cookie and "Path=/admin" in cookie
    assert client.post("/admin/logout", data={"csrf_token": page_token(client, "/admin/")}).status_code == 302
    guess_from_many_ips(client, admin.email, 5)
    again = client.post("/admin/login", data={**form, "csrf_token": page_token(client, "/admin/login")})
    assert again.status_code == 302 and again.headers["Location"] == "/admin/"


def test_with_the_counter_storage_down_guessing_stays_bounded(throttled, user):
    """Redis unreachable: the budgets are counted in process memory instead of not at all."""
    client = throttled(RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0",
                       RATELIMIT_KEY_PREFIX=f"down-{uuid.uuid4().hex[:8]}")
    for _ in range(3):
        assert login(client, user.email, WRONG).status_code == 401
    assert_locked(login(client, user.email))
