"""Helpers shared by several test modules (fixtures live in conftest.py, which uses these too)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import Post, Role
from app.services import posts, users
from scripts.live_server import LiveServer, free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Sup3rSecret"
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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


def write_post(app: Flask, author_id: int, title: str, body: str = "Body", *, at: datetime | None = None) -> int:
    """Create a post through the service; `at` backdates it (created and updated then)."""
    with app.app_context():
        post_id = posts.create_post(users.get_user(author_id), title=title, body=body).id
        if at is not None:
            db.session.execute(update(Post).where(Post.id == post_id).values(created_at=at, updated_at=at))
        db.session.commit()  # the services flush; the set-up commits as a request would
    return post_id


def follow(client: FlaskClient, who: Person, whom_id: int, method: str = "PUT") -> TestResponse:
    """`who` follows (PUT) or unfollows (DELETE) user `whom_id` through the API."""
    return client.open(f"/api/users/{whom_id}/follow", method=method, headers=who.headers)
