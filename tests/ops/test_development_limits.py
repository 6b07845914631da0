"""`make run` (development) has limits a person trying the API, or a generated client's
test run, never meets: without Redis each gunicorn worker counts on its own, so limits
near the production defaults would make 429s come and go from one request to the next.
Production keeps its defaults (tests/api/test_rate_limits.py)."""

from __future__ import annotations

import pytest

from tests.helpers import PASSWORD


@pytest.fixture
def development_client(make_app):
    """The app as `make run` builds it: development defaults, counters in process memory."""
    app = make_app(APP_ENV="development", RATELIMIT_STORAGE_URI="memory://", BCRYPT_ROUNDS=4)
    assert app.config["RATELIMIT_ENABLED"]
    return app.test_client()


def test_trying_registrations_in_development_meets_no_limit(development_client):
    statuses = {development_client.post("/api/users", json={
        "email": f"trying{n}@example.com", "name": "Trying", "password": PASSWORD}).status_code
        for n in range(60)}
    assert statuses == {201}


def test_trying_logins_and_writes_in_development_meets_no_limit(development_client, user):
    logins = [development_client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
              for _ in range(40)]
    assert {response.status_code for response in logins} == {200}
    assert int(logins[-1].headers["X-RateLimit-Remaining"]) >= 900  # limits stay on, and visible
    wrong = {development_client.post("/api/auth/login", json={"email": user.email, "password": "Wr0ngPassword"})
             .status_code for _ in range(20)}
    assert wrong == {401}
    bearer = {"Authorization": "Bearer " + logins[-1].get_json()["access_token"]}
    writes = {development_client.post("/api/posts", json={"title": "t", "body": "b"}, headers=bearer).status_code
              for _ in range(150)}
    assert writes == {201}


def test_production_keeps_its_defaults_and_development_multiplies_them(make_app):
    from config import ProductionConfig

    production = ProductionConfig.defaults()
    assert (production["RATELIMIT_LOGIN"], production["RATELIMIT_REGISTER"], production["RATELIMIT_WRITE"],
            production["RATELIMIT_SEARCH"]) == ("10/minute", "20/hour", "120/minute", "30/minute")
    development = make_app(APP_ENV="development").config
    assert (development["RATELIMIT_LOGIN"], development["RATELIMIT_SEARCH"]) == ("1000/minute", "3000/minute")
