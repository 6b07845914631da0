"""Helpers shared by several test modules (fixtures live in conftest.py, which uses these too)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import redis
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, create_engine, event, text
from werkzeug.test import TestResponse

from app import database, mail
from app.database import normalise_url
from app.extensions import db
from app.models import Role
from config import Config, Duration, Setting
from scripts.live_server import LiveServer, free_port, stop_process

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


def start_gunicorn(database_url: str, *, workers: int = 4, env: dict[str, str] | None = None,
                   launcher: tuple[str, ...] = ()) -> LiveServer:
    """The test app under gunicorn on `database_url`; stop it with `server.stop()`. With a
    `launcher` (the image's `python serve.py`), gunicorn runs as its child."""
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
    return LiveServer.start(env=environment, port=port, workers=workers, launcher=launcher)


def stop_times(environment: Mapping[str, str]) -> tuple[float, float]:
    """What stopping an instance takes with this environment, in seconds: serve.py's lame-duck
    period (SHUTDOWN_DELAY), then gunicorn's graceful timeout (gunicorn.conf.py's default unless set)."""
    default = int(re.search(r'"GUNICORN_GRACEFUL_TIMEOUT", Duration\("s"\), (\d+)\)',
                            (ROOT / "gunicorn.conf.py").read_text())[1])
    graceful = Setting(Duration("s"), default, "GUNICORN_GRACEFUL_TIMEOUT").read(environment)
    return Config.SHUTDOWN_DELAY.read(environment, "SHUTDOWN_DELAY"), graceful


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


# ---- a mail server with a script, and the worker as a process -----------------------------


class ScriptedSmtp:
    """An SMTP handler (aiosmtpd) that answers each DATA with the next of `replies` (then 250),
    after the next of `delays` seconds (then none). `seen` holds the Message-ID of every DATA,
    taken or not; `received` the messages taken. Plain attributes only: aiosmtpd reads them all."""

    def __init__(self, replies: list[str] | None = None, delays: list[float] | None = None) -> None:
        self.replies = list(replies or [])
        self.delays = list(delays or [])
        self.seen: list[str] = []
        self.received: list = []
        self.data_started = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.seen.append(message["Message-ID"])
        self.data_started.set()
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        if self.replies:
            return self.replies.pop(0)
        self.received.append(message)
        return "250 Message accepted"


@contextmanager
def smtp_on(port: int, handler: object) -> Iterator[Controller]:
    """An SMTP server on 127.0.0.1:`port` with `handler`, for the `with` block."""
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def wait_for(condition: Callable[[], object], timeout: float = 30, what: str = "the condition") -> None:
    """Poll until `condition()` is true; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class WorkerProcess:
    """`flask worker` in a process of its own; its stderr goes to a file (`output()`)."""

    process: subprocess.Popen
    log: IO[bytes]
    path: Path
    final: str | None = None

    def output(self) -> str:
        return self.final if self.final is not None else self.path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        stop_process(self.process, timeout)
        if self.final is None:
            self.log.close()
            self.final = self.path.read_text(errors="replace")
            self.path.unlink(missing_ok=True)
        return self.process.returncode


def start_worker(database_url: str, smtp_port: int, **settings: str) -> WorkerProcess:
    """`flask worker` with production's settings on the suite's database, sending to
    127.0.0.1:`smtp_port`, plus `settings`."""
    env = {**os.environ, **production_settings(), "DATABASE_URL": database_url, "MAIL_PORT": str(smtp_port),
           "FLASK_APP": "wsgi.py", "FLASK_SKIP_DOTENV": "1", "LOG_LEVEL": "INFO", **settings}
    handle, name = tempfile.mkstemp(prefix="worker-", suffix=".log")
    log = os.fdopen(handle, "wb")
    process = subprocess.Popen([sys.executable, "-m", "flask", "worker"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=log)
    return WorkerProcess(process, log, Path(name))


@contextmanager
def posts_locked(database_url: str) -> Iterator[None]:
    """Another session, straight to PostgreSQL, holds an exclusive lock on `posts` until the block ends."""
    engine = create_engine(normalise_url(database_url))
    connection = engine.connect()
    transaction = connection.begin()
    connection.execute(text("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE"))
    try:
        yield
    finally:
        transaction.rollback()
        connection.close()
        engine.dispose()


@contextmanager
def statements_run(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """The statements the app runs in the block, with their parameters, to explain them after."""
    seen: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, parameters, *_args) -> None:
        seen.append((statement, parameters))

    engines = database.engines(app)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def query_plan(connection: Connection, statement: str, parameters: Any) -> str:
    """The database's own plan of a statement: PostgreSQL's EXPLAIN, SQLite's EXPLAIN QUERY PLAN."""
    if connection.dialect.name == "postgresql":
        return "\n".join(connection.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())
    return "\n".join(row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))


def tables_in_plan(plan: str) -> set[str]:
    """The tables (or CTEs) a plan of `query_plan` reads: PostgreSQL's "... Scan [using <index>] on
    <table>" (a "Bitmap Index Scan on" names an index, its heap scan the table), SQLite's
    "SCAN <table>" and "SEARCH <table>" (its "SCAN CONSTANT ROW" reads none)."""
    postgresql = re.findall(r"(?<!Bitmap Index )Scan(?: Backward)?(?: using \w+)? on (\w+)", plan)
    sqlite = re.findall(r"^(?:SCAN|SEARCH) (\w+)", plan, re.MULTILINE)
    return set(postgresql + sqlite) - {"CONSTANT"}


def queue_mail(app: Flask, to: str) -> int:
    """A password-reset message queued (and committed) for `to`, as a request would queue it; its id."""
    with app.test_request_context():
        message = mail.enqueue(to, "Reset your password", "reset_password", user=None, link="http://x/?token=t",
                               minutes=30)
        db.session.commit()
        return message.id
