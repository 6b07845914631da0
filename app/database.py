"""The database engines and their lifecycle: one place for all of them.

- Writes (and every read inside a request that writes) use Flask-SQLAlchemy's
  engine and request-scoped session, in transactions.
- Single-statement reads use `reads`, their own engine: an autocommit pool on the
  same PostgreSQL, with its own statement timeout. On SQLite, where a round trip
  is a function call, reads use the main engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import flask_sqlalchemy.session
from flask import Flask, current_app
from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from config import ConfigurationError

log = logging.getLogger(__name__)

T = TypeVar("T")

SUPPORTED_DRIVERS = ("postgresql+psycopg2", "sqlite", "sqlite+pysqlite")
URL_EXAMPLES = "postgresql://user:password@host:5432/name or sqlite:////absolute/path/app.db"


def configure_engine(app: Flask) -> None:
    """Settle the database URL and the main engine's options before Flask-SQLAlchemy reads them."""
    uri = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not uri:
        os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
        uri = f"sqlite:///{os.path.join(app.instance_path, 'app.db')}"
    uri = normalise_url(uri)
    check_url(uri, "TEST_DATABASE_URL" if app.config.get("TESTING") else "DATABASE_URL")
    create_private_sqlite_file(uri)
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    options: dict[str, Any] = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    if is_postgresql(uri):
        options.update(app.config["SQLALCHEMY_ENGINE_OPTIONS_POOL"])
        options.setdefault("pool_pre_ping", True)
        connect_args = options.setdefault("connect_args", {})
        connect_args.setdefault("connect_timeout", app.config["DB_CONNECT_TIMEOUT"])
        connect_args.setdefault("options", _session_options(app.config["DB_STATEMENT_TIMEOUT_MS"]))
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


def is_postgresql(uri: str) -> bool:
    return make_url(uri).get_backend_name() == "postgresql"


def _session_options(timeout_ms: int) -> str:
    """Per-connection settings: a statement timeout, and no JIT compilation, which costs
    tens of milliseconds on the short queries a web request makes and pays off only on
    long analytical ones (a search's plan can cross `jit_above_cost`)."""
    return f"-c statement_timeout={timeout_ms} -c jit=off"


class Session(flask_sqlalchemy.session.Session):
    """A request's session, which ends cleanly even if the server dropped its connection.

    Ending a session rolls back; when PostgreSQL has just restarted that rollback
    fails, and the exception would turn a request that already succeeded into a 500.
    SQLAlchemy has invalidated the connection by then, so the pool replaces it.
    """

    def commit(self) -> None:
        """Commit, unless `one_transaction` holds the commits: then only flush, so the
        services' work and whatever the holder adds commit (or roll back) together."""
        if self.info.get("hold_commits"):
            self.flush()
            return
        super().commit()

    def close(self) -> None:
        try:
            super().close()
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("database connection lost while ending a request; it will be replaced")


@contextlib.contextmanager
def one_transaction(session: Any) -> Any:
    """Inside the block, services' commits only flush; the block's owner commits once.
    A service that rolls back (a refusal) still rolls back everything."""
    session.info["hold_commits"] = True
    try:
        yield
    finally:
        session.info.pop("hold_commits", None)


class ReadEngine:
    """The engine of single-statement reads, as a Flask extension: created unbound,
    bound to each app in `init_app`, disposed of with `dispose`.

    In autocommit psycopg2 sends no BEGIN and its ROLLBACK is a no-op, and without
    pre-ping there is no `SELECT 1`: one round trip per read instead of four
    (bench/where-the-time-goes.md). A dead connection is caught by `run` instead.
    """

    def init_app(self, app: Flask) -> None:
        uri = app.config["SQLALCHEMY_DATABASE_URI"]
        engine = None
        if is_postgresql(uri):
            options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
            connect_args = {**options["connect_args"], "options": _session_options(app.config["DB_READ_TIMEOUT_MS"])}
            engine = create_engine(uri, **{
                **options,
                "connect_args": connect_args,
                "isolation_level": "AUTOCOMMIT",
                "pool_pre_ping": False,
                "pool_reset_on_return": None,  # nothing to reset: no transaction is ever open
            })
        app.extensions["read_engine"] = engine

    @property
    def engine(self) -> Engine:
        return current_app.extensions["read_engine"] or current_app.extensions["sqlalchemy"].engine

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run a read on a pooled connection, once more if that connection turns out to
        be dead (PostgreSQL restarted since it was last used).

        The first failure invalidates the pool, so the retry connects afresh; if the
        server is still down, that raises the usual OperationalError (a 503). Retrying
        is safe because a read changes nothing. `work` must only read.
        """
        engine = self.engine
        try:
            with engine.connect() as connection:
                return work(connection)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("database connection lost before a read; retrying on a new one")
        with engine.connect() as connection:
            return work(connection)


def engines(app: Flask) -> list[Engine]:
    """Every engine of the app: the main one, and the read engine where there is one."""
    with app.app_context():
        main = list(current_app.extensions["sqlalchemy"].engines.values())
    read = app.extensions.get("read_engine")
    return [*main, *([read] if read is not None else [])]


def check_url(uri: str, variable: str = "DATABASE_URL") -> URL:
    """Refuse, in one sentence, a URL no engine here can use; SQLAlchemy would say it in a traceback."""
    try:
        url = make_url(normalise_url(uri))
    except ArgumentError:
        raise ConfigurationError(f"{variable} is not a database URL; use {URL_EXAMPLES}") from None
    if url.drivername not in SUPPORTED_DRIVERS:
        raise ConfigurationError(f"{variable} names an unsupported database {url.drivername!r}; "
                                 f"use {URL_EXAMPLES}")
    return url


def connection_problem(error: DBAPIError, url: URL) -> str:
    """One line that says which database could not be reached and why (the driver's first line)."""
    reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    where = url.render_as_string(hide_password=True)
    hint = ""
    if "does not exist" in reason and url.get_backend_name() == "postgresql":
        host, user = url.host or "localhost", url.username or "postgres"
        hint = f" (create it first: createdb -h {host} -U {user} {url.database})"
    elif url.get_backend_name() == "sqlite":
        hint = " (does its folder exist, and may this user write there?)"
    return f"cannot connect to the database {where}: {reason}{hint}"


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
