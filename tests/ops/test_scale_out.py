"""Two hosts behind a load balancer: two gunicorn instances on one database and one Redis.

Nothing that matters across requests may live in process memory: a revocation
made through one instance holds on the other, and the password-failure budget counts the
failures on both together.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import requests

from tests.helpers import PASSWORD, LiveServer, RedisKeys, start_gunicorn

LOGIN_LIMIT = 4
WRITE_LIMIT = 6


@pytest.fixture
def two_hosts(app, database_url: str, redis_keys: RedisKeys) -> Iterator[tuple[LiveServer, LiveServer, RedisKeys]]:
    env = {"REDIS_URL": redis_keys.url, "RATELIMIT_ENABLED": "1", "RATELIMIT_KEY_PREFIX": redis_keys.prefix,
           "RATELIMIT_LOGIN": "100/minute", "RATELIMIT_WRITE": f"{WRITE_LIMIT}/minute",
           "LOGIN_FAILURES_PER_EMAIL_IP": f"{LOGIN_LIMIT}/minute", "LOGIN_FAILURES_PER_EMAIL": f"{LOGIN_LIMIT}/minute"}
    first = start_gunicorn(database_url, workers=2, env=env)
    try:
        second = start_gunicorn(database_url, workers=2, env=env)
    except Exception:
        first.stop()
        raise
    yield first, second, redis_keys
    first.stop()
    second.stop()


def register_and_login(host: LiveServer, email: str) -> dict:
    created = requests.post(host.url + "/api/users", timeout=10,
                            json={"email": email, "name": "Scale Out", "password": PASSWORD})
    assert created.status_code == 201, created.text
    response = requests.post(host.url + "/api/auth/login", timeout=10,
                             json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_token_revoked_through_one_host_is_refused_by_the_other(two_hosts):
    first, second, _ = two_hosts
    tokens = register_and_login(first, "roaming@example.com")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    for _ in range(4):  # several requests, so both workers of the second host see it
        assert requests.get(second.url + "/api/users/me", headers=bearer, timeout=10).status_code == 200

    logout = requests.post(first.url + "/api/auth/logout", headers=bearer, timeout=10,
                           json={"refresh_token": tokens["refresh_token"]})
    assert logout.status_code == 204

    for _ in range(4):
        refused = requests.get(second.url + "/api/users/me", headers=bearer, timeout=10)
        assert refused.status_code == 401
        assert refused.headers["Content-Type"] == "application/problem+json"
    refresh = requests.post(second.url + "/api/auth/refresh", timeout=10,
                            headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert refresh.status_code == 401


def test_the_password_failure_budget_counts_failures_on_both_hosts_together(two_hosts):
    first, second, redis_keys = two_hosts
    register_and_login(first, "target@example.com")  # a success spends nothing
    hosts = itertools.cycle([second, first])
    statuses = []
    for _ in range(LOGIN_LIMIT):
        statuses.append(requests.post(next(hosts).url + "/api/auth/login", timeout=10, json={
            "email": "target@example.com", "password": "Wrong-passw0rd"}).status_code)
    assert statuses == [401] * LOGIN_LIMIT

    for host in (first, second):
        blocked = requests.post(host.url + "/api/auth/login", timeout=10,
                                json={"email": "target@example.com", "password": PASSWORD})
        assert blocked.status_code == 429
        assert blocked.headers["Content-Type"] == "application/problem+json"
        assert 0 < int(blocked.headers["Retry-After"]) <= 60
        assert "failed password attempts" in blocked.json()["detail"]
    assert any("account-budgets/email/target@example.com/" in key for key in redis_keys.own_keys())


def test_the_write_budget_is_shared_by_both_hosts(two_hosts, make_user):
    first, second, _ = two_hosts
    author = make_user()
    bearer = {"Authorization": f"Bearer {author.access_token}"}
    budget = WRITE_LIMIT
    hosts = itertools.cycle([first, second])
    statuses = [requests.post(next(hosts).url + "/api/posts", headers=bearer, timeout=10,
                              json={"title": "t", "body": "b"}).status_code for _ in range(budget + 1)]
    assert statuses == [201] * budget + [429]
