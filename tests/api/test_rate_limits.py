"""Abuse limits: login, refresh, registration and writes, counted where they should be.

Each test builds its own app with small limits and fresh counters (in memory, or
in a real Redis for the shared-storage tests).
"""

from __future__ import annotations

import time

import pytest

from tests.helpers import PASSWORD, assert_problem, free_port

LIMITS = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_LOGIN": "3/minute",
    "RATELIMIT_REGISTER": "2/hour",
    "RATELIMIT_WRITE": "3/minute",
    "LOGIN_FAILURES_PER_EMAIL_IP": "3/minute",
    "LOGIN_FAILURES_PER_EMAIL": "3/minute",
    "LOGIN_FAILURES_PER_DEVICE": "3/minute",
}


@pytest.fixture
def limited(make_app):
    """An app with small limits and its own counters."""

    def build(**overrides):
        return make_app(**{**LIMITS, **overrides})

    return build


def login(client, email: str, password: str = PASSWORD, ip: str = "198.51.100.1", **kwargs):
    return client.post("/api/auth/login", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip}, **kwargs)


def register(client, n: int, ip: str = "198.51.100.1"):
    return client.post("/api/users", json={"email": f"new{n}@example.com", "name": "New Person",
                                           "password": PASSWORD}, environ_base={"REMOTE_ADDR": ip})


def new_post(client, headers=None, ip: str = "198.51.100.1"):
    return client.post("/api/posts", json={"title": "t", "body": "b"}, headers=headers or {},
                       environ_base={"REMOTE_ADDR": ip})


def assert_too_many(response, window_seconds: int) -> dict:
    body = assert_problem(response, 429)
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= window_seconds
    assert response.headers["X-RateLimit-Remaining"] == "0"
    return body


# ---- login --------------------------------------------------------------------


def test_login_over_the_limit_per_ip_is_429_problem_json_with_retry_after(limited, make_user):
    client = limited().test_client()
    for n in range(3):
        assert login(client, f"nobody{n}@example.com").status_code == 401
    body = assert_too_many(login(client, "nobody9@example.com"), 60)
    assert "3 per 1 minute" in body["detail"]


def test_while_blocked_even_the_right_password_is_refused(limited, user):
    client = limited().test_client()
    for _ in range(3):
        assert login(client, user.email, "Wrong-passw0rd").status_code == 401
    assert_too_many(login(client, user.email, user.password), 60)


def assert_locked(response, window_seconds: int) -> dict:
    """Refused by a password-failure budget (app.services.throttle)."""
    body = assert_problem(response, 429)
    assert 0 < int(response.headers["Retry-After"]) <= window_seconds
    assert "failed password attempts" in body["detail"]
    return body


def test_login_failures_are_limited_per_target_email_across_ips(limited, user):
    client = limited().test_client()
    for n in range(3):
        assert login(client, user.email, "Wrong-passw0rd", ip=f"203.0.113.{n}").status_code == 401
    assert_locked(login(client, user.email, user.password, ip="203.0.113.99"), 60)


def test_target_email_limit_ignores_case_and_surrounding_spaces(limited, user):
    client = limited().test_client()
    variants = [user.email.upper(), f"  {user.email}", user.email.capitalize()]
    for n, email in enumerate(variants):
        login(client, email, "Wrong-passw0rd", ip=f"203.0.113.{n}")
    assert_locked(login(client, user.email, user.password, ip="203.0.113.99"), 60)


def test_a_blocked_ip_does_not_block_other_clients_or_emails(limited, make_user):
    victim, other = make_user(), make_user()
    client = limited().test_client()
    for _ in range(3):
        login(client, victim.email, "Wrong-passw0rd", ip="198.51.100.66")
    assert login(client, other.email, ip="198.51.100.66").status_code == 429
    assert login(client, other.email, ip="198.51.100.67").status_code == 200


def test_retry_after_says_when_the_window_ends(limited, user):
    client = limited(RATELIMIT_LOGIN="2 per 2 seconds").test_client()
    for _ in range(2):
        login(client, user.email, "Wrong-passw0rd")
    blocked = login(client, user.email)
    assert_too_many(blocked, 2)
    time.sleep(int(blocked.headers["Retry-After"]) + 1)  # whole seconds, rounded down
    assert login(client, user.email).status_code == 200


def test_login_limit_is_configurable(limited, user):
    client = limited(RATELIMIT_LOGIN="5/minute").test_client()
    statuses = [login(client, f"nobody{n}@example.com").status_code for n in range(6)]
    assert statuses == [401] * 5 + [429]


def test_limits_are_off_when_disabled(limited, user):
    client = limited(RATELIMIT_ENABLED=False).test_client()
    statuses = {login(client, user.email, "Wrong-passw0rd").status_code for _ in range(8)}
    assert statuses == {401}


def test_an_app_without_limits_stays_unlimited_after_a_limited_app_was_built(limited, client, user):
    """The limiter object is process-wide; each app's own switch must still decide."""
    limited()
    statuses = {login(client, user.email, "Wrong-passw0rd").status_code for _ in range(12)}
    assert statuses == {401}


def test_login_responses_carry_rate_limit_headers(limited, user):
    response = login(limited().test_client(), user.email)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "2"
    assert int(response.headers["X-RateLimit-Reset"]) > 0


# ---- which responses carry which headers -------------------------------------------

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def test_retry_after_is_only_on_429(limited, user):
    client = limited().test_client()
    answers = [new_post(client, user.headers) for _ in range(3)]
    answers += [register(client, 1), client.post("/api/users", json={"email": "x"}),
                login(client, user.email, password="wrong")]
    assert [r.status_code for r in answers] == [201, 201, 201, 201, 422, 401]
    for response in answers:
        assert "Retry-After" not in response.headers, (response.status_code, dict(response.headers))
        assert all(name in response.headers for name in RATE_HEADERS)
    assert_too_many(new_post(client, user.headers), 60)


def test_a_503_says_retry_after_5_on_limited_routes_too(make_app, tmp_path):
    down = make_app(**LIMITS, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'missing-dir' / 'app.db'}")
    client = down.test_client()
    for response in (register(client, 1), login(client, "someone@example.com")):
        assert_problem(response, 503)
        assert response.headers["Retry-After"] == "5"


def test_requests_no_limit_counts_carry_no_rate_limit_headers(limited, user):
    """Reads count against the read limits, but like Flask-Limiter's other application-wide
    limits they show their headers only on the 429."""
    client = limited().test_client()
    me = client.get("/api/users/me", headers=user.headers)
    for response in (client.get("/api/posts"), client.get("/health"), me):
        assert response.status_code == 200
        assert not any(name in response.headers for name in (*RATE_HEADERS, "Retry-After"))


# ---- refresh ------------------------------------------------------------------


def refresh(client, token: str, ip: str = "198.51.100.1"):
    return client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {token}"},
                       environ_base={"REMOTE_ADDR": ip})


def test_refresh_is_limited_per_ip(limited, make_user):
    client = limited().test_client()
    people = [make_user() for _ in range(4)]
    statuses = [refresh(client, person.refresh_token).status_code for person in people]
    assert statuses == [200, 200, 200, 429]


def test_refresh_is_limited_per_user_across_ips(limited, user):
    client = limited().test_client()
    token = user.refresh_token
    for n in range(3):
        response = refresh(client, token, ip=f"203.0.113.{n}")
        assert response.status_code == 200
        token = response.get_json()["refresh_token"]
    assert_too_many(refresh(client, token, ip="203.0.113.50"), 60)


def test_refresh_is_limited_per_user_whether_the_token_is_the_bearer_or_in_the_body(limited, user):
    client = limited().test_client()
    token = user.refresh_token
    for n in range(3):
        response = client.post("/api/auth/refresh", json={"refresh_token": token},
                               environ_base={"REMOTE_ADDR": f"203.0.113.{n}"})
        assert response.status_code == 200
        token = response.get_json()["refresh_token"]
    assert_too_many(refresh(client, token, ip="203.0.113.50"), 60)
    assert_too_many(client.post("/api/auth/refresh", json={"refresh_token": token},
                                environ_base={"REMOTE_ADDR": "203.0.113.51"}), 60)


# ---- registration ---------------------------------------------------------------


def test_registration_is_limited_per_ip(limited):
    client = limited().test_client()
    assert [register(client, n).status_code for n in range(2)] == [201, 201]
    assert_too_many(register(client, 3), 3600)
    assert register(client, 4, ip="198.51.100.2").status_code == 201


def test_registration_default_is_20_per_hour(make_app):
    client = make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://").test_client()
    statuses = [register(client, n).status_code for n in range(21)]
    assert statuses == [201] * 20 + [429]


# ---- writes and reads -------------------------------------------------------------


def test_writes_are_limited_per_user(limited, make_user):
    author, other = make_user(), make_user()
    client = limited().test_client()
    assert [new_post(client, author.headers).status_code for _ in range(3)] == [201] * 3
    assert_too_many(new_post(client, author.headers), 60)
    assert new_post(client, other.headers).status_code == 201


def test_writes_with_a_lower_case_bearer_count_per_user(limited, make_user):
    author, other = make_user(), make_user()
    lower = {"Authorization": f"bearer {author.access_token}"}
    client = limited().test_client()
    assert [new_post(client, lower).status_code for _ in range(3)] == [201] * 3
    assert_too_many(new_post(client, author.headers, ip="198.51.100.2"), 60)  # same user, other IP
    assert new_post(client, {"Authorization": f"bearer {other.access_token}"}).status_code == 201


def test_patch_and_delete_count_as_writes(limited, user):
    client = limited().test_client()
    post_id = new_post(client, user.headers).get_json()["id"]
    assert client.patch(f"/api/posts/{post_id}", json={"title": "x"}, headers=user.headers).status_code == 200
    assert client.delete(f"/api/posts/{post_id}", headers=user.headers).status_code == 204
    assert_too_many(new_post(client, user.headers), 60)


def test_anonymous_writes_are_limited_per_ip(limited):
    client = limited().test_client()
    assert [new_post(client).status_code for _ in range(3)] == [401] * 3
    assert_too_many(new_post(client), 60)
    assert new_post(client, ip="198.51.100.2").status_code == 401


def test_a_forged_token_counts_against_the_ip_not_its_subject(limited, user):
    client = limited().test_client()
    forged = {"Authorization": "Bearer " + user.access_token[:-4] + "AAAA"}
    for _ in range(3):
        new_post(client, forged)
    assert new_post(client, user.headers, ip="198.51.100.2").status_code == 201


def test_anonymous_reads_are_limited_per_ip_by_default(limited, app):
    client = limited().test_client()
    allowed = int(app.config["RATELIMIT_READ"].split("/")[0])
    statuses = [client.get("/api/posts", environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code
                for _ in range(allowed + 1)]
    assert statuses == [200] * allowed + [429]
    assert client.get("/api/posts", environ_base={"REMOTE_ADDR": "198.51.100.8"}).status_code == 200


def test_signed_in_reads_count_per_user_on_a_larger_budget(limited, make_user):
    client = limited(RATELIMIT_READ="2/minute", RATELIMIT_READ_USER="4/minute").test_client()
    ann, bob = make_user(), make_user()
    ip = {"REMOTE_ADDR": "198.51.100.11"}
    assert [client.get("/api/posts", environ_base=ip).status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get("/api/posts", headers=ann.headers, environ_base=ip).status_code
            for _ in range(5)] == [200] * 4 + [429]
    assert client.get("/api/posts", headers=bob.headers, environ_base=ip).status_code == 200


def test_searches_have_a_tighter_limit_of_their_own(limited, user):
    client = limited(RATELIMIT_SEARCH="2/minute").test_client()
    ip = {"REMOTE_ADDR": "198.51.100.12"}
    searches = [client.get("/api/posts?q=flask", environ_base=ip) for _ in range(3)]
    assert [r.status_code for r in searches[:2]] == [200, 200]
    assert_too_many(searches[2], 60)
    assert client.get(f"/api/users/{user.id}/posts?q=flask", environ_base=ip).status_code == 429
    assert client.get("/api/posts", environ_base=ip).status_code == 200


def test_reads_are_limited_when_configured(limited, user):
    client = limited(RATELIMIT_READ="4/minute").test_client()
    statuses = [client.get("/api/posts", environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code
                for _ in range(5)]
    assert statuses == [200] * 4 + [429]
    assert client.get("/api/posts", environ_base={"REMOTE_ADDR": "198.51.100.10"}).status_code == 200
    assert new_post(client, user.headers, ip="198.51.100.9").status_code == 201


def test_health_probes_are_never_limited(limited):
    client = limited(RATELIMIT_READ="2/minute").test_client()
    assert {client.get("/health").status_code for _ in range(5)} == {200}


# ---- client IP behind proxies -------------------------------------------------------


def test_x_forwarded_for_is_ignored_without_proxy_fix(limited, user):
    client = limited().test_client()
    for n in range(3):
        login(client, f"nobody{n}@example.com", headers={"X-Forwarded-For": f"192.0.2.{n}"})
    response = login(client, user.email, headers={"X-Forwarded-For": "192.0.2.200"})
    assert_too_many(response, 60)


def test_x_forwarded_for_is_the_client_ip_with_proxy_fix(limited, user):
    client = limited(PROXY_FIX_HOPS=1).test_client()
    for n in range(3):
        login(client, f"nobody{n}@example.com", headers={"X-Forwarded-For": "192.0.2.1"})
    assert login(client, user.email, headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 429
    assert login(client, user.email, headers={"X-Forwarded-For": "192.0.2.2"}).status_code == 200


def test_proxy_fix_trusts_only_the_configured_number_of_hops(limited, user):
    """With one trusted proxy, a client-supplied left-most address is not believed."""
    client = limited(PROXY_FIX_HOPS=1).test_client()
    for n in range(3):
        spoofed = f"10.9.9.{n}, 192.0.2.1"
        login(client, f"nobody{n}@example.com", headers={"X-Forwarded-For": spoofed})
    response = login(client, user.email, headers={"X-Forwarded-For": "10.9.9.99, 192.0.2.1"})
    assert response.status_code == 429


# ---- storage ------------------------------------------------------------------------


def test_in_memory_counters_belong_to_one_process(limited, user):
    """Documented: without Redis each process (each gunicorn worker) counts on its own."""
    first = limited().test_client()
    for _ in range(3):
        login(first, user.email, "Wrong-passw0rd")
    assert login(first, user.email).status_code == 429
    second = limited().test_client()
    assert login(second, user.email).status_code == 200


def test_redis_counters_are_shared_by_every_app_instance(limited, user, redis_keys):
    prefix = redis_keys.prefix
    config = {"RATELIMIT_STORAGE_URI": redis_keys.url, "RATELIMIT_KEY_PREFIX": prefix}
    first = limited(**config).test_client()
    for _ in range(3):
        assert login(first, user.email, "Wrong-passw0rd").status_code == 401
    second = limited(**config).test_client()
    assert_locked(login(second, user.email, user.password, ip="198.51.100.2"), 60)
    keys = redis_keys.own_keys()
    assert any(f"account-budgets/email/{user.email}/" in key for key in keys), keys


def test_redis_limits_expire_with_their_window(limited, user, redis_keys):
    client = limited(RATELIMIT_STORAGE_URI=redis_keys.url, RATELIMIT_KEY_PREFIX=redis_keys.prefix,
                     RATELIMIT_LOGIN="2/minute").test_client()
    for _ in range(2):
        login(client, user.email, "Wrong-passw0rd")
    assert login(client, user.email).status_code == 429
    keys = redis_keys.own_keys()
    assert keys
    for key in keys:
        ttl = redis_keys.connection.ttl(key)
        assert 0 < ttl <= 60


def test_an_unreachable_redis_neither_fails_nor_unlimits_requests(limited, user):
    """Storage down: counting falls back to process memory instead of 500s or no limits."""
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    client = limited(RATELIMIT_STORAGE_URI=nobody_listens).test_client()
    statuses = [login(client, user.email, "Wrong-passw0rd").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert new_post(client, {"Authorization": f"Bearer {user.access_token}"}).status_code == 201
