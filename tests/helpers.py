"""Helpers shared by several test modules (fixtures live in conftest.py, which uses these too)."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import redis
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.models import Role
from scripts.live_server import LiveServer, free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Sup3rSecret"
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BASE = "http://localhost"  # TestingConfig.PUBLIC_BASE_URL
NEXT_LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def bearer(token: str) -> dict[str, str]:
    """The `Authorization` header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Person:
    id: int
    email: str
    password: str
    role: Role
    access_token: str
    refresh_token: str
    headers: dict[str, str] = field(default_factory=dict)


def production_settings(**overrides) -> dict:
    """What production refuses to start without (but the database): strong secrets made
    now (never in the repository), the public URL and a mail server."""
    return {"APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48), "JWT_SECRET_KEY": secrets.token_urlsafe(48),
            "PUBLIC_BASE_URL": "http://localhost", "MAIL_SERVER": "127.0.0.1", **overrides}


def assert_problem(response, status: int) -> dict:
    """The response is RFC 9457 problem details with this status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


@dataclass
class RedisKeys:
    """A Redis connection and the key prefix a test owns (pass it as `RATELIMIT_KEY_PREFIX`)."""

    url: str
    connection: redis.Redis
    prefix: str

    def own_keys(self) -> list[str]:
        return sorted(key.decode() for key in self.connection.scan_iter(match=f"*{self.prefix}*", count=500))

    def delete_own(self) -> None:
        for key in self.connection.scan_iter(match=f"*{self.prefix}*", count=500):
            self.connection.delete(key)


def start_gunicorn(database_url: str, *, workers: int = 4, env: dict[str, str] | None = None) -> LiveServer:
    """The test app under gunicorn on `database_url`; stop it with `server.stop()`."""
    port = free_port()
    environment = {
        **os.environ,
        "APP_ENV": "testing",
        "TEST_DATABASE_URL": database_url,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    return LiveServer.start(env=environment, port=port, workers=workers)


def follow(client: FlaskClient, who: Person, whom_id: int, method: str = "PUT") -> TestResponse:
    """`who` follows (PUT) or unfollows (DELETE) user `whom_id` through the API."""
    return client.open(f"/api/users/{whom_id}/follow", method=method, headers=who.headers)


# ---- pages ---------------------------------------------------------------------


def ids(response: TestResponse) -> list[int]:
    """The ids on a page of a list."""
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in response.get_json()]


def next_url(response: TestResponse) -> str | None:
    """The target of the `Link: rel="next"` header, if any."""
    header = response.headers.get("Link")
    if header is None:
        return None
    match = NEXT_LINK.match(header)
    assert match, header
    return match["url"]


def walk(client: FlaskClient, url: str, headers: dict[str, str] | None = None) -> list[list[int]]:
    """Follow `next` links from `url`; the ids on each page."""
    pages = []
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        pages.append([item["id"] for item in response.get_json()])
        url = next_url(response)
        assert len(pages) < 100, "the walk does not end"
    return pages


# ---- mail ----------------------------------------------------------------------


def parts(message) -> dict[str, str]:
    """The plain-text and HTML parts of a message, by content type."""
    return {part.get_content_type(): part.get_content() for part in message.walk()
            if part.get_content_type() in ("text/plain", "text/html")}


def link_in(message, path: str) -> str:
    """The link to `path` (with its token) that a message carries, the same in both parts."""
    text = parts(message)["text/plain"]
    match = re.search(rf"{re.escape(BASE)}{path}\?token=[^\s]+", text)
    assert match, text
    assert match.group(0) in parts(message)["text/html"]
    return match.group(0)


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    """`POST /api/auth/login`."""
    return client.post("/api/auth/login", json={"email": email, "password": password})


def signed_in(client: FlaskClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    """The bearer headers of a new API session of this account."""
    response = login(client, email, password)
    assert response.status_code == 200, response.text
    return bearer(response.get_json()["access_token"])
