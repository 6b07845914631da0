"""The database engines and their lifecycle: one place for all of them.

- Writes (and every read inside a request that writes) use Flask-SQLAlchemy's
  engine and request-scoped session, in transactions.
- Single-statement reads use `reads`, their own engine: an autocommit pool on the
  same PostgreSQL, with its own statement timeout. On SQLite, where a round trip
  is a function call, reads use the main engine.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import re
import threading
import time
import weakref
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import flask_sqlalchemy.session
from flask import Flask, Response, current_app, g, has_request_context, request
from sqlalchemy import URL, Connection, Engine, Executable, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

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
        options.update(pool_size=app.config["DB_POOL_SIZE"], max_overflow=app.config["DB_MAX_OVERFLOW"],
                       pool_timeout=app.config["DB_POOL_TIMEOUT"], pool_recycle=app.config["DB_POOL_RECYCLE"])
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
    bound to each app in `init_app`, disposed of with `dispose`; with
    `DATABASE_REPLICA_URLS`, also the router that sends those reads to the replicas.

    In autocommit psycopg2 sends no BEGIN and its ROLLBACK is a no-op, and without
    pre-ping there is no `SELECT 1`: one round trip per read instead of four
    (bench/where-the-time-goes.md). A dead connection is caught by `run` instead.

    Each thread holds one connection of the primary's read pool from its first read on
    (`held_connection`): a gunicorn sync worker serves one request at a time, and checking a
    connection out and back in for every read cost more than the round trip of a one-row read.
    Nothing stays open on it between reads (autocommit); `dispose` closes it.
    """

    def init_app(self, app: Flask) -> None:
        from app import metrics

        uri = app.config["SQLALCHEMY_DATABASE_URI"]
        engine = None
        replicas: list[Replica] = []
        if is_postgresql(uri):
            engine = _read_engine(app, uri, "reads")
            for n, replica_uri in enumerate(app.config.get("DATABASE_REPLICA_URLS") or [], start=1):
                replica_uri = normalise_url(replica_uri)
                check_url(replica_uri, "DATABASE_REPLICA_URLS")
                name = f"replica{n}"
                replicas.append(Replica(name, _read_engine(app, replica_uri, name, connect_timeout=2)))
                metrics.watch_pool(replicas[-1].engine, name)
            metrics.watch_pool(engine, "reads")
            _held_engines.add(engine)
            event.listen(engine, "engine_disposed", release_held_connection)
        elif app.config.get("DATABASE_REPLICA_URLS"):
            raise ConfigurationError("DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL")
        app.extensions["read_engine"] = engine
        app.extensions["read_router"] = ReplicaRouter(app, replicas) if replicas else None
        if replicas:
            app.after_request(_remember_write_position)
        _forked_engines.update(engines(app))

    @property
    def engine(self) -> Engine:
        return current_app.extensions["read_engine"] or current_app.extensions["sqlalchemy"].engine

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run a read on a replica when one may serve it, else on the primary.

        A replica that fails is skipped (log line, retried later) and the read runs
        on the next one or the primary: the client sees no error. `work` must only read.
        """
        router = current_app.extensions.get("read_router")
        if router is None:
            return self._run_on(self.engine, work)
        from app.metrics import READS

        choice = router.choose()
        for replica in choice.replicas:
            try:
                with replica.engine.connect() as connection:
                    result = work(connection)
            except DBAPIError as error:
                if not (error.connection_invalidated or isinstance(error, (OperationalError, InterfaceError))):
                    raise  # a mistake in the statement: the primary would refuse it too
                replica.failed(error)
                continue
            READS.labels(replica.name, choice.reason).inc()
            return result
        READS.labels("primary", choice.primary_reason).inc()
        return self._run_on(self.engine, work)

    def run_on_primary(self, work: Callable[[Connection], T]) -> T:
        """A read that must see the primary as it is now, replicas or not: who is signed in
        (a session ended a moment ago is refused at the very next request, whatever a
        standby has replayed). Still one round trip on the autocommit pool."""
        return self._run_on(self.engine, work)

    @staticmethod
    def _run_on(engine: Engine, work: Callable[[Connection], T]) -> T:
        """Run a read on a pooled connection, once more if that connection turns out to
        be dead (PostgreSQL restarted since it was last used).

        The first failure invalidates the pool, so the retry connects afresh; if the
        server is still down, that raises the usual OperationalError (a 503). Retrying
        is safe because a read changes nothing.
        """
        try:
            return _on_a_connection(engine, work)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("database connection lost before a read; retrying on a new one")
            release_held_connection(engine)
        return _on_a_connection(engine, work)


_held_engines: weakref.WeakSet[Engine] = weakref.WeakSet()  # the primaries' read engines
_held = threading.local()  # `connections`: this thread's held connection of each of them
_inherited: list[Any] = []  # a parent's held connections, after fork(): kept, never used nor closed


def held_connection(engine: Engine) -> Connection:
    """This thread's connection of `engine`, opened at its first read and kept."""
    held = _held.__dict__.setdefault("connections", {})
    connection = held.get(engine)
    if connection is not None and not connection.invalidated:
        return connection
    release_held_connection(engine)
    connection = held[engine] = engine.connect()
    return connection


def release_held_connection(engine: Engine) -> None:
    """Close this thread's held connection of `engine`, if any: once it has died, and when
    its engine is disposed of (its pool is gone by then)."""
    connection = _held.__dict__.get("connections", {}).pop(engine, None)
    if connection is not None:
        with contextlib.suppress(SQLAlchemyError):
            if not connection.invalidated:
                connection.invalidate()
            connection.close()


def _on_a_connection(engine: Engine, work: Callable[[Connection], T]) -> T:
    if engine in _held_engines:
        return work(held_connection(engine))
    with engine.connect() as connection:
        return work(connection)


# A statement whose plan does not depend on its values may be kept prepared on each read
# connection: `select(...).execution_options(prepare=True)`. PostgreSQL then parses and plans it
# once per connection, in the round trip of its first run, instead of on every request; for the
# one-row reads every authenticated request and every 304 make, planning was most of the
# server's work (bench/where-the-time-goes.md). A pool may refuse (`DB_PREPARED_STATEMENTS=0`,
# behind a pooler that moves sessions between server connections): the engine's
# `prepare_statements` option.
PREPARE = "prepare"
PREPARE_STATEMENTS = "prepare_statements"
_PREPARED = "prepared_statements"  # the names prepared on a connection, in its pool entry's `info`
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
_NO_LONGER_PREPARED = ("26000", "0A000")  # no such prepared statement; its result type changed
_DATA_EXCEPTION = "22"  # SQLSTATE class: a value out of its type's range, or not of its type
_statement_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A statement as PostgreSQL keeps it: a name, the EXECUTE that runs it, and the same
    EXECUTE behind its PREPARE, for the first run on a connection (still one round trip)."""

    name: str
    execute: str
    prepare_and_execute: str

    @classmethod
    def of(cls, sql: str) -> _Prepared:
        name = f"app_read_{next(_statement_numbers)}"
        positions: dict[str, int] = {}

        def placeholder(match: re.Match[str]) -> str:
            if match.group(1) is None:
                return "%%"  # a literal `%`, still for psycopg2 to undouble
            return f"${positions.setdefault(match.group(1), len(positions) + 1)}"

        body = _PLACEHOLDER.sub(placeholder, sql)
        arguments = ", ".join(f"%({parameter})s" for parameter in positions)
        execute = f"EXECUTE {name}({arguments})" if positions else f"EXECUTE {name}"
        return cls(name, execute, f"PREPARE {name} AS {body}; {execute}")

    def run(self, cursor: Any, values: dict[str, Any], prepared_here: set[str], sql: str) -> None:
        """Execute it on `cursor`, preparing it in the same round trip if its connection has not.

        Whatever a prepared run refuses, `sql` answers as it always would: a value its parameter's
        type cannot hold (an id past the column's range, where the SQL's literal simply matches
        nothing) runs as `sql`; a statement the server no longer holds prepared (a `DISCARD ALL`,
        a table changed under it) runs as `sql` and is prepared afresh next time."""
        if self.name in prepared_here:
            statement = self.execute
        else:
            prepared_here.add(self.name)  # a PREPARE stays when the EXECUTE after it fails
            statement = self.prepare_and_execute
        try:
            cursor.execute(statement, values)
        except Exception as error:
            code = getattr(error, "pgcode", None) or ""
            if code in _NO_LONGER_PREPARED:
                prepared_here.discard(self.name)
                with contextlib.suppress(Exception):
                    cursor.execute(f"DEALLOCATE {self.name}")
            elif not code.startswith(_DATA_EXCEPTION):
                raise
            cursor.execute(sql, values)


@dataclass(frozen=True, slots=True)
class _PlainStatement:
    """A statement as its driver takes it: the SQL, the values of its constant parameters,
    a named tuple for its rows, the conversion (if any) of each column's values, and its
    prepared form when it may be kept prepared."""

    sql: str
    constants: dict[str, Any]
    row: type
    converters: tuple[Callable[[Any], Any] | None, ...] | None
    prepared: _Prepared | None = None

    def rows(self, cursor: Any, parameters: dict[str, Any], prepared_here: set[str] | None = None) -> list:
        """Its rows; `prepared_here`, the names prepared on the cursor's connection, when it may use them."""
        values = {**self.constants, **parameters}
        if self.prepared is not None and prepared_here is not None:
            self.prepared.run(cursor, values, prepared_here, self.sql)
        else:
            cursor.execute(self.sql, values)
        make = self.row._make
        if self.converters is None:
            return [make(values) for values in cursor.fetchall()]
        converters = self.converters
        return [make([value if convert is None or value is None else convert(value)
                      for convert, value in zip(converters, values, strict=True)]) for values in cursor.fetchall()]


@lru_cache(maxsize=256)
def _plain(statement: Executable, dialect: Dialect) -> _PlainStatement | None:
    """`statement` compiled once for `dialect`, or None when only SQLAlchemy can run it
    (a parameter to convert on the way in, or a parameter it renders per execution)."""
    columns = getattr(statement, "selected_columns", None)
    if columns is None or dialect.paramstyle != "pyformat":
        return None
    compiled = statement.compile(dialect=dialect)
    if "POSTCOMPILE" in compiled.string:
        return None
    binds = compiled.binds.values()
    if any(bind.callable or bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds):
        return None
    try:
        row = namedtuple("Row", columns.keys())
    except ValueError:  # two columns of one name
        return None
    converters = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns)
    constants = {name: value for name, value in compiled.params.items() if not compiled.binds[name].required}
    prepared = None
    if statement.get_execution_options().get(PREPARE) and dialect.name == "postgresql":
        prepared = _Prepared.of(compiled.string)
    return _PlainStatement(compiled.string, constants, row, converters if any(converters) else None, prepared)


def fetch_all(connection: Connection, statement: Executable, parameters: dict[str, Any]) -> list:
    """`connection.execute(statement, parameters).all()`, on the driver's cursor itself when
    nothing listens to statements (the tests' statement counter does): for the
    single-statement reads every request makes, SQLAlchemy's execution context and result
    cost more than the round trip (bench/where-the-time-goes.md). A driver error is raised
    as SQLAlchemy raises it; on a lost connection the statement goes through SQLAlchemy
    instead, which invalidates the pool and raises for `reads.run` to retry."""
    engine = connection.engine
    plain = None
    if not (engine.dispatch.before_cursor_execute or engine.dispatch.after_cursor_execute):
        plain = _plain(statement, connection.dialect)
    if plain is not None:
        dialect, pooled = connection.dialect, connection.connection
        dbapi_connection = pooled.dbapi_connection
        prepared_here = None
        if plain.prepared is not None and engine.get_execution_options().get(PREPARE_STATEMENTS):
            prepared_here = pooled.info.setdefault(_PREPARED, set())
        cursor = dbapi_connection.cursor()
        try:
            return plain.rows(cursor, parameters, prepared_here)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, cursor):
                # Not run again: a read that hit its statement timeout would wait for it twice.
                raise DBAPIError.instance(plain.sql, parameters, error, dialect.loaded_dbapi.Error,
                                          dialect=dialect) from error
        finally:
            cursor.close()
    return connection.execute(statement, parameters).all()


def _read_engine(app: Flask, uri: str, name: str, connect_timeout: int | None = None) -> Engine:
    """An autocommit pool for single-statement reads, with the read timeout; its connections
    carry `application_name` so that `pg_stat_activity` tells the pools apart. A replica's
    connect timeout is libpq's shortest (2 s): an unreachable one stalls a read no longer."""
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    connect_args = {**options["connect_args"], "options": _session_options(app.config["DB_READ_TIMEOUT_MS"]),
                    "application_name": f"{app.config.get('DB_APPLICATION_NAME', 'users-posts')}:{name}"}
    if connect_timeout is not None:
        connect_args["connect_timeout"] = min(connect_timeout, connect_args.get("connect_timeout", 2))
    return create_engine(uri, **{
        **options,
        "connect_args": connect_args,
        "isolation_level": "AUTOCOMMIT",
        "pool_pre_ping": False,
        "pool_reset_on_return": None,  # nothing to reset: no transaction is ever open
        "execution_options": {PREPARE_STATEMENTS: app.config["DB_PREPARED_STATEMENTS"]},
    })


# ---- replicas ---------------------------------------------------------------------------------
# Read-your-writes: after a client's successful write (or sign-in), the primary's WAL position
# (`pg_current_wal_lsn()`) is kept in Redis under the client's user id, for an hour. A read by
# that client goes to a replica only if the replica had replayed at least that far at its
# last check (`pg_last_wal_replay_lsn()`, checked by each worker every REPLICA_CHECK_SECONDS);
# otherwise to the primary. Anonymous reads go to any replica less than REPLICA_MAX_LAG_SECONDS
# behind. Requests that write read on the primary throughout.

# Lag 0 when everything received is replayed; NULL when nothing was received since the standby
# started (it streams again from the start of a segment, behind what it had replayed), so that
# only the primary's position can tell whether it is current (`Replica.refresh`).
_REPLICA_STATUS = text("""
    SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() < pg_last_wal_replay_lsn()
                    THEN NULL
                ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END,
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END
               - '0/0'::pg_lsn
""")
_PRIMARY_POSITION = text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
# Keep the larger of the stored and the new position (two writes of one client may finish in any order).
_KEEP_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else redis.call('EXPIRE', KEYS[1], ARGV[2]) end
"""
POSITION_SECONDS = 3600  # a replica more than an hour behind is skipped by the lag bound anyway


class Replica:
    """One hot standby as this worker last saw it: its lag, how far it has replayed, whether it answers."""

    def __init__(self, name: str, engine: Engine) -> None:
        self.name, self.engine = name, engine
        self.checked_at = -math.inf
        self.lag: float | None = None  # None: did not answer at its last check
        self.replayed = 0
        self.problem: str | None = None

    def refresh(self, now: float, max_lag: float, primary_position: Callable[[], int | None]) -> None:
        """Ask the standby how far behind it is; log when it starts or stops being skipped."""
        from app.metrics import REPLICA_LAG

        self.checked_at = now
        try:
            with self.engine.connect() as connection:
                lag, replayed = connection.execute(_REPLICA_STATUS).one()
        except DBAPIError as error:
            self.failed(error)
            REPLICA_LAG.labels(self.name).set(-1)
            return
        self.replayed = int(replayed or 0)
        if lag is None:
            # Nothing streamed since it started, and none may come until the primary writes:
            # current if it has replayed all that the primary wrote, else behind by an unknown time.
            position = primary_position()
            lag = 0.0 if position is not None and self.replayed >= position else math.inf
        self.lag = float(lag)
        REPLICA_LAG.labels(self.name).set(self.lag)
        problem = f"lag {self.lag:.1f} s > {max_lag:g} s" if self.lag > max_lag else None
        if problem and self.problem is None:
            log.warning("replica %s skipped: %s; anonymous reads go elsewhere until it catches up", self.name,
                        problem)
        elif problem is None and self.problem is not None:
            log.info("replica %s serves reads again (lag %.1f s)", self.name, self.lag)
        self.problem = problem

    def failed(self, error: DBAPIError) -> None:
        """Skip this replica until its next check; one log line per outage."""
        self.lag = None
        self.checked_at = time.monotonic()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        if self.problem is None:
            log.warning("replica %s skipped: %s; its reads go elsewhere until it answers", self.name, reason)
        self.problem = reason
        with contextlib.suppress(Exception):
            self.engine.dispose()


@dataclass
class Choice:
    replicas: list[Replica]
    reason: str  # why a replica (any: "lag_ok"; a writer's: "caught_up")
    primary_reason: str  # why the primary, if no replica serves


class ReplicaRouter:
    """Picks the server of each read of posts: a standby that is recent enough for this client,
    else the primary. Write positions live in Redis (`<RATELIMIT_KEY_PREFIX>:wal-position:<user id>`)
    so that every worker and host honours them."""

    def __init__(self, app: Flask, replicas: list[Replica]) -> None:
        import redis

        self.replicas = replicas
        self.max_lag = float(app.config["REPLICA_MAX_LAG_SECONDS"])
        self.check_every = float(app.config.get("REPLICA_CHECK_SECONDS", 1.0))
        self.redis = redis.Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=0.5, socket_timeout=0.5)
        self.keep_max = self.redis.register_script(_KEEP_MAX)
        self.key_prefix = f"{app.config.get('RATELIMIT_KEY_PREFIX', 'users-posts')}:wal-position:"
        self._turn = 0

    def choose(self) -> Choice:
        if has_request_context() and request.method not in ("GET", "HEAD"):
            return Choice([], "", "write_request")
        client = reader_id()
        needed = 0
        if client is not None:
            needed = self.position_of(client)
            if needed is None:
                return Choice([], "", "position_unknown")
        now = time.monotonic()
        self._turn = (self._turn + 1) % len(self.replicas)
        order = self.replicas[self._turn:] + self.replicas[:self._turn]
        usable, behind_client = [], False
        for replica in order:
            if now - replica.checked_at >= self.check_every:
                replica.refresh(now, self.max_lag, self.primary_position)
            if replica.lag is None or replica.lag > self.max_lag:
                continue
            if replica.replayed < needed:
                behind_client = True
                continue
            usable.append(replica)
        if usable:
            return Choice(usable, "caught_up" if needed else "lag_ok", "failover")
        if behind_client:
            return Choice([], "", "own_write")
        lagging = any(replica.lag is not None for replica in self.replicas)
        return Choice([], "", "lagging" if lagging else "unavailable")

    def position_of(self, client: int) -> int | None:
        """The WAL position the client's reads must see (0: none kept); None when Redis does not answer."""
        try:
            value = self.redis.get(self.key_prefix + str(client))
        except Exception as error:  # any Redis failure: the primary is always up to date
            log.warning("Redis did not answer for a read-your-writes position (%s); reading on the primary",
                        error)
            return None
        return int(value or 0)

    @staticmethod
    def primary_position() -> int | None:
        """How far the primary has written (None if it does not answer)."""
        try:
            with current_app.extensions["read_engine"].connect() as connection:
                return int(connection.scalar(_PRIMARY_POSITION))
        except SQLAlchemyError:
            return None

    def remember(self, client: int) -> None:
        position = self.primary_position()
        if position is None:  # the write succeeded; its client may read a lagging replica meanwhile
            log.warning("could not keep client %s's write position for read-your-writes: the primary did "
                        "not answer", client)
            return
        try:
            self.keep_max(keys=[self.key_prefix + str(client)], args=[position, POSITION_SECONDS])
        except Exception as error:
            log.warning("could not keep client %s's write position for read-your-writes: %s", client, error)


def reader_id() -> int | None:
    """The signed-in user a request reads for (bearer token, admin session or a login being answered)."""
    if not has_request_context():
        return None
    if "reader_id" in g:
        return g.reader_id
    from app.ratelimit import write_limit_key

    key = write_limit_key()
    found = key.removeprefix("user:") if key.startswith("user:") else None
    g.reader_id = int(found) if found is not None and found.isdigit() else None
    return g.reader_id


def read_for(user_id: int) -> None:
    """The signed-in user this request reads for, where the request knows it otherwise than by
    a bearer token (the admin pages' session)."""
    if has_request_context():
        g.reader_id = user_id


def note_reader(user_id: int) -> None:
    """This request signs `user_id` in: its reads from now on must see the primary as it is now."""
    if has_request_context():
        g.reader_id = user_id
        g.reader_signed_in = True


def _remember_write_position(response: Response) -> Response:
    """After a successful write, or a sign-in, keep the primary's position for the client's next reads."""
    wrote = request.method not in ("GET", "HEAD", "OPTIONS") and response.status_code < 400
    if wrote or g.get("reader_signed_in"):
        client = reader_id()
        router = current_app.extensions.get("read_router")
        if client is not None and router is not None:
            router.remember(client)
    return response


# Engines whose pooled connections a forked child must not use: gunicorn loads the app
# once and forks its workers from it (`preload_app`), and a connection the parent opened
# would then be one socket shared by two processes.
_forked_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_the_parents_connections() -> None:
    """In a child after `fork()`: new pools, leaving the inherited connections to the parent
    (SQLAlchemy's `dispose(close=False)`, "Using Connection Pools with Multiprocessing")."""
    _inherited.append(_held.__dict__.pop("connections", None))  # the parent's sockets: not ours to close
    for engine in list(_forked_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_the_parents_connections)


def engines(app: Flask) -> list[Engine]:
    """Every engine of the app: the main one, and the read engine where there is one."""
    with app.app_context():
        main = list(current_app.extensions["sqlalchemy"].engines.values())
    read = app.extensions.get("read_engine")
    router = app.extensions.get("read_router")
    replicas = [replica.engine for replica in router.replicas] if router is not None else []
    return [*main, *([read] if read is not None else []), *replicas]


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
