"""Shared fixtures, for every layer of tests:

- tests/api: the HTTP contract, through the Flask test client (a live gunicorn where it needs one);
- tests/services: the services called directly;
- tests/admin: the admin pages and the pages the mailed links open;
- tests/ops: configuration, the command line, migrations, metrics, logs, servers, replicas, docs;
- tests/e2e: the admin in a real browser.

Factories for users, posts and follows are in tests/factories.py; helpers in tests/helpers.py.

The database is real: PostgreSQL when `TEST_DATABASE_URL` is set (its name must
contain "test", so a developer's database is never touched), otherwise a
throwaway SQLite file. The schema is built by the Alembic migrations, once per
session; every test starts from empty tables (they are emptied after each test).

- `app`, `client`: the Flask app and its test client (the real HTTP layer, in process).
- `sql_statements`: the SQL statements run during a test (for query counts), seen through
  SQLAlchemy's cursor events: the path production runs.
- `make_app`: another app on the same database, with config overrides.
- `make_user`, `make_post`, `make_follow`, `user`, `admin`: the factories of tests/factories.py.
- `live_server`: the same app under gunicorn with several workers, for tests
  that need real concurrency or separate processes.
- `redis_keys`: a real Redis (`TEST_REDIS_URL`, default redis://127.0.0.1:6379/0)
  and a key prefix of the test's own; only keys under it are deleted afterwards
  (never a flush: the database may be someone else's). Tests using it are marked
  `redis` and skipped, saying why, when no Redis answers.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from app import create_app, database
from app.database import check_url, connection_problem
from app.extensions import db
from app.worker import deliver_due
from config import ConfigurationError
from scripts.live_server import LiveServer
from tests.factories import admin, make_follow, make_post, make_user, user  # noqa: F401 (fixtures, found by name)
from tests.helpers import REDIS_TEST_URL, ROOT, RedisKeys, free_port, start_gunicorn

REDIS_TEST_PREFIX = os.environ.get("TEST_REDIS_KEY_PREFIX", "test")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "redis: needs a Redis at TEST_REDIS_URL (skipped when none answers)")


def _test_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    try:
        name = check_url(url, "TEST_DATABASE_URL").database or ""
    except ConfigurationError as error:
        pytest.exit(str(error), returncode=pytest.ExitCode.USAGE_ERROR)
    if "test" not in name:
        pytest.exit(f"TEST_DATABASE_URL must name a throwaway database containing 'test', not {name!r}")
    return url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _test_database_url(tmp_path_factory)


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    try:
        app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": database_url})
    except ConfigurationError as error:
        pytest.exit(str(error), returncode=pytest.ExitCode.USAGE_ERROR)
    with app.app_context():
        _require_database()
        _rebuild_schema()
    yield app
    _dispose_engines(app)


def _dispose_engines(app: Flask) -> None:
    for engine in database.engines(app):
        engine.dispose()


def _require_database() -> None:
    """A test database that is missing or down stops the run with one line, not an error per test."""
    try:
        with db.engine.connect():
            pass
    except DBAPIError as error:
        pytest.exit(f"TEST_DATABASE_URL: {connection_problem(error, db.engine.url)}",
                    returncode=pytest.ExitCode.USAGE_ERROR)


def _rebuild_schema() -> None:
    """Drop everything, then run the real migrations: the tests use the schema deployers get."""
    from flask_migrate import upgrade

    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    else:
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            connection.execute(text("DROP TABLE IF EXISTS posts_fts"))
    upgrade(directory=str(ROOT / "migrations"))


def empty_tables() -> None:
    """Empty every table of the models, so a new model's table is emptied with no list to edit."""
    tables = db.metadata.sorted_tables
    with db.engine.begin() as connection:
        quote = connection.dialect.identifier_preparer.format_table
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(map(quote, tables))} RESTART IDENTITY CASCADE"))
            return
        # Dependents first. Deleting rows fires the triggers that keep `daily_counts` and the
        # search index: a second pass empties what they wrote while the first one ran.
        for _ in range(2):
            for table in reversed(tables):
                connection.execute(table.delete())
        if connection.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'posts_fts'")).first():
            # The search index is no model's table (migration 0005): emptied as FTS5 documents.
            connection.execute(text("INSERT INTO posts_fts (posts_fts) VALUES ('delete-all')"))
        connection.execute(text("DELETE FROM sqlite_sequence"))  # as RESTART IDENTITY does


@pytest.fixture(autouse=True)
def _isolated(app: Flask) -> Iterator[None]:
    yield
    with app.app_context():
        db.session.remove()
        empty_tables()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_app(database_url: str) -> Iterator:
    """Build another app on the same database with config overrides (e.g. `CORS_ORIGINS`),
    as another worker or host would be. It shares the tables, so the usual cleanup applies."""
    made: list[Flask] = []

    def make(**overrides) -> Flask:
        other = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": database_url, **overrides})
        made.append(other)
        return other

    yield make
    for other in made:
        _dispose_engines(other)


@pytest.fixture
def sql_statements(app: Flask) -> Iterator[list[str]]:
    """The SQL the app runs from now on, to prove query counts (never timings)."""
    statements: list[str] = []
    engines = database.engines(app)  # the main engine and, on PostgreSQL, the read engine

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    yield statements
    for engine in engines:
        event.remove(engine, "before_cursor_execute", record)


# ---- Redis ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_connection() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        connection.ping()
    except redis.RedisError as error:
        connection.close()
        pytest.skip(f"no Redis answers at {REDIS_TEST_URL} ({error}); start one or set TEST_REDIS_URL "
                    "(.ci/run starts one)")
    yield connection
    connection.close()


@pytest.fixture
def redis_keys(request: pytest.FixtureRequest, redis_connection: redis.Redis) -> Iterator[RedisKeys]:
    """Keys of this test's own in a shared Redis: deleted by prefix afterwards, never flushed."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]  # no glob characters in SCAN's pattern
    keys = RedisKeys(REDIS_TEST_URL, redis_connection, f"{REDIS_TEST_PREFIX}-{name}-{uuid.uuid4().hex}")
    yield keys
    keys.delete_own()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "redis_keys" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)


# ---- a real server ------------------------------------------------------------


@pytest.fixture(scope="session")
def live_server(app: Flask, database_url: str) -> Iterator[LiveServer]:
    server = start_gunicorn(database_url)
    yield server
    server.stop()


# ---- a real mail server -------------------------------------------------------------


class Inbox:
    """The SMTP server's handler (aiosmtpd): keeps what it receives. Plain attributes only, since
    aiosmtpd reads every attribute of its handler when a client connects."""

    def __init__(self) -> None:
        self.received: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.received.append(message)
        return "250 Message accepted"


class MailBox:
    """Messages received by an SMTP server (aiosmtpd) that the tests start on loopback.

    Requests only queue mail (app/mail.py); reading `messages` first delivers what is due through
    the function `flask worker` runs (`app.worker.deliver_due`), in this process, with the app
    the test built, as a worker would."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.apps: list[Flask] = []

    def deliver(self) -> int:
        """Send what the outbox holds, through the last app built (they share the database)."""
        if not self.apps:
            return 0
        with self.apps[-1].app_context():
            try:
                return deliver_due()
            finally:
                db.session.remove()

    @property
    def messages(self) -> list:
        self.deliver()
        return self.inbox.received

    def to(self, address: str) -> list:
        return [m for m in self.messages if address in m["X-Envelope-To"]]


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, MailBox]]:
    from aiosmtpd.controller import Controller

    box = MailBox()
    port = free_port()
    controller = Controller(box.inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, box
    controller.stop()


@pytest.fixture
def mail_app(make_app, smtp_server):
    """An app on the suite's database whose queued mail goes through the test SMTP server
    (delivered when the test reads `mail_app.box`)."""
    port, box = smtp_server

    def build(**overrides) -> Flask:
        built = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, **overrides)
        box.apps.append(built)
        return built

    build.box = box  # type: ignore[attr-defined]
    return build
