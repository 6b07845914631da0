"""Engine settings per backend: pooled, fail-fast PostgreSQL; SQLite as the embedded default."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.extensions import db

log = logging.getLogger(__name__)

T = TypeVar("T")

READS = "reads"  # the bind key of the read engine (PostgreSQL only)


def configure_engine(app: Flask) -> None:
    uri = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not uri:
        os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
        uri = f"sqlite:///{os.path.join(app.instance_path, 'app.db')}"
        app.config["SQLALCHEMY_DATABASE_URI"] = uri
    uri = normalise_url(uri)
    create_private_sqlite_file(uri)
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    options: dict[str, Any] = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    if make_url(uri).get_backend_name() == "postgresql":
        options.update(app.config["SQLALCHEMY_ENGINE_OPTIONS_POOL"])
        options.setdefault("pool_pre_ping", True)
        connect_args = options.setdefault("connect_args", {})
        connect_args.setdefault("connect_timeout", app.config["DB_CONNECT_TIMEOUT"])
        connect_args.setdefault(
            "options", f"-c statement_timeout={app.config['DB_STATEMENT_TIMEOUT_MS']}"
        )
        app.config.setdefault("SQLALCHEMY_BINDS", {})[READS] = _read_engine_options(uri, options)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def create_private_sqlite_file(uri: str) -> None:
    """Create an SQLite database file readable by its owner only (0600), before SQLite
    would create it under the umask (usually world-readable). Its journals take the same mode."""
    url = make_url(uri)
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return
    if os.path.isdir(os.path.dirname(os.path.abspath(path))):
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _read_engine_options(uri: str, options: dict[str, Any]) -> dict[str, Any]:
    """A second pool for single-statement reads, which need no transaction.

    In autocommit psycopg2 sends no BEGIN and its ROLLBACK is a no-op, and without
    pre-ping there is no `SELECT 1`: one round trip per read instead of four
    (bench/where-the-time-goes.md). A dead connection is caught by `run_read` instead.
    """
    return {
        **options,
        "url": uri,
        "isolation_level": "AUTOCOMMIT",
        "pool_pre_ping": False,
        "pool_reset_on_return": None,  # nothing to reset: no transaction is ever open
    }


def read_engine() -> Engine:
    """The engine for `run_read`; on SQLite, where a round trip is a function call, the main one."""
    return db.engines.get(READS) or db.engine


def run_read(work: Callable[[Connection], T]) -> T:
    """Run a read on a pooled connection of the read engine, once more if that connection
    turns out to be dead (PostgreSQL restarted since it was last used).

    The first failure invalidates the pool, so the retry connects afresh; if the
    server is still down, that raises the usual OperationalError (a 503). Retrying is
    safe because a read changes nothing. `work` must only read.
    """
    try:
        with read_engine().connect() as connection:
            return work(connection)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        log.warning("database connection lost before a read; retrying on a new one")
    with read_engine().connect() as connection:
        return work(connection)


def normalise_url(url: str) -> str:
    """Use psycopg2 for plain `postgresql://` (and Heroku's `postgres://`) URLs;
    SQLAlchemy 2.1 would otherwise look for psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url.removeprefix(prefix)
    return url


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked per connection."""
    if type(dbapi_connection).__module__ == "sqlite3":
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def end_sessions_safely(app: Flask) -> None:
    """End each request's session even if the server dropped its connection meanwhile.

    Flask-SQLAlchemy's own teardown rolls back on close; when PostgreSQL has just
    restarted that rollback fails, and the exception would turn a request that
    already succeeded into a 500. SQLAlchemy has invalidated the connection by then,
    so the pool replaces it; the session is dropped. Registered after `db.init_app`,
    this runs before Flask-SQLAlchemy's teardown, which then has nothing left to do.
    """

    @app.teardown_appcontext
    def remove_session(_error: BaseException | None) -> None:
        try:
            db.session.remove()
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("database connection lost while ending a request; it will be replaced")
            db.session.registry.clear()
