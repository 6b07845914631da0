"""The database engines, the request's session, and where each statement runs.

Services read and write through `db.session` alone; `Session.get_bind` decides the engine:
the main engine (writes, and every read of a request that writes, in one transaction per
request), the read engine (an autocommit pool on the same PostgreSQL with its own statement
timeout, for GET requests), or a replica recent enough for the caller. Every engine is
configured by SQLAlchemy's documented options only: pre-ping for the main engine's dead
connections, optimistic disconnect handling for the read pools (a read on a dropped connection
runs again once), recycling, `isolation_level="AUTOCOMMIT"` and no reset-on-return for the read
pools, `dispose(close=False)` after a fork.

Each connection runs with server settings (`server_settings`: a statement timeout, `jit=off`):
sent when it opens, or, behind a transaction pooler (`DB_POOLER=transaction`, PgBouncer), as
`SET LOCAL` at the start of each transaction, with one pool on the primary
(docs/decisions/0013-server-settings-through-a-transaction-pooler.md).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import flask_sqlalchemy.session
import redis
from flask import Flask, Response, current_app, g, has_request_context, request
from sqlalchemy import URL, Engine, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import ORMExecuteState

from app.identity import live_user_id
from app.metrics import READS, REPLICA_LAG
from config import ConfigurationError

log = logging.getLogger(__name__)

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
        if not behind_a_transaction_pooler(app):
            connect_args.setdefault("options", _startup_options(server_settings(app.config["DB_STATEMENT_TIMEOUT_MS"])))
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


# The server settings every connection of the app runs with, beside its statement timeout. One
# list for both ways of sending them (`server_settings`): add a setting here and it reaches the
# server directly and through a transaction pooler alike.
REQUEST_SETTINGS: dict[str, str] = {
    # No JIT compilation: it costs more than the whole of the short queries a web request makes
    # and pays off only on long analytical ones (a search's plan can cross `jit_above_cost`).
    "jit": "off",
    # No parallel query: starting workers costs milliseconds, more than a request's whole query
    # when the planner overestimates its rows (a search for a rare word or prefix on millions of
    # posts), and under load two workers per query take the cores other requests need.
    "max_parallel_workers_per_gather": "0",
}


def server_settings(timeout_ms: int) -> dict[str, str]:
    """The settings of a connection whose statements may run `timeout_ms` at most."""
    return {"statement_timeout": str(timeout_ms), **REQUEST_SETTINGS}


def behind_a_transaction_pooler(app: Flask) -> bool:
    return app.config["DB_POOLER"] == "transaction"


def _startup_options(settings: dict[str, str]) -> str:
    """The settings as libpq's `options` startup parameter: the server applies them once, when
    the connection opens, for its whole life (no statement, no round trip)."""
    return " ".join(f"-c {name}={value}" for name, value in settings.items())


def set_in_each_transaction(engine: Engine, settings: Callable[[], dict[str, str]]) -> None:
    """Behind a transaction pooler (DB_POOLER=transaction), which hands this client a server
    connection one transaction at a time and refuses the `options` startup parameter (PgBouncer:
    "unsupported startup parameter: options"): every transaction of `engine` starts with
    `settings()` as `SET LOCAL`, one statement for all (`set_config(name, value, is_local => true)`).
    They end with the transaction, so the next client of that server connection never inherits
    them. SQLAlchemy's `begin` event runs before the first statement of each transaction, on its
    connection."""

    def set_locally(connection: Any) -> None:
        pairs = list(settings().items())
        statement = text("SELECT " + ", ".join(f"set_config(:name{n}, :value{n}, true)" for n in range(len(pairs))))
        connection.execute(statement, {key: item for n, (name, value) in enumerate(pairs)
                                       for key, item in ((f"name{n}", name), (f"value{n}", value))})

    event.listen(engine, "begin", set_locally)


def _settings_of_the_request(app: Flask) -> Callable[[], dict[str, str]]:
    """Behind a transaction pooler the primary has one pool (see `ReadEngine`): a transaction begun
    by a GET request runs with the read timeout, any other (writes, the command line) with the
    statement timeout."""
    reads = server_settings(app.config["DB_READ_TIMEOUT_MS"])
    writes = server_settings(app.config["DB_STATEMENT_TIMEOUT_MS"])

    def settings() -> dict[str, str]:
        return reads if has_request_context() and request.method in READ_METHODS else writes

    return settings


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# `.execution_options(read_from=PRIMARY)`: a read that must see the primary as it is now,
# replicas or not (who is signed in: a session ended a moment ago is refused at once).
READ_FROM = "read_from"
PRIMARY = "primary"


class Session(flask_sqlalchemy.session.Session):
    """The request's one unit of work, which also decides where each statement runs.

    `get_bind` is SQLAlchemy's documented hook for partitioning a session over engines:

    - a read (SELECT) of a GET or HEAD request, before anything was written, runs on the
      read engine: an autocommit pool on the primary with the read timeout (no BEGIN, no
      ROLLBACK), or a replica recent enough for the caller (`ReplicaRouter`), chosen once
      per request;
    - everything else (writes, the reads of a request that writes, the CLI) runs on the
      main engine, in the one transaction that the request's boundary commits (`app.transaction`).

    A replica that fails under a read is skipped (log line, metric) and the read runs again
    on the primary, and a read on a connection the server dropped runs again on a new one
    (`_read_again_on_a_new_connection`): the client sees no error.
    """

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Any = None, **kwargs: Any) -> Any:
        if bind is None and clause is not None:
            if getattr(clause, "is_dml", False):
                self.info["wrote"] = True
            elif self._reads_elsewhere(clause):
                return self._read_bind(clause)
        return super().get_bind(mapper, clause=clause, bind=bind, **kwargs)

    def _reads_elsewhere(self, clause: Any) -> bool:
        return (isinstance(clause, Select) and not self.info.get("wrote") and has_request_context()
                and request.method in READ_METHODS and current_app.extensions.get("read_engine") is not None)

    def _read_bind(self, clause: Select) -> Engine:
        primary = current_app.extensions["read_engine"]
        if clause.get_execution_options().get(READ_FROM) == PRIMARY:
            return primary
        if "replica" not in self.info:
            router = current_app.extensions.get("read_router")
            self.info["replica"] = router.choose() if router is not None else None
        replica = self.info["replica"]
        return replica.engine if replica is not None else primary

    def close(self) -> None:
        """End the session even if the server dropped its connection: ending rolls back, and
        when PostgreSQL has just restarted that rollback fails, which would turn a request
        that already succeeded into a 500. SQLAlchemy has invalidated the connection by then."""
        self.info.pop("wrote", None)
        self.info.pop("replica", None)
        try:
            super().close()
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            log.warning("database connection lost while ending a request; it will be replaced")


@event.listens_for(Session, "do_orm_execute")
def _read_again_on_a_new_connection(state: ORMExecuteState) -> Any:
    """A read pool's connection is not pinged before use (SQLAlchemy's "optimistic" disconnect
    handling): when the server dropped it meanwhile, or a replica failed, SQLAlchemy invalidates
    the pool and the read runs once more on a new connection (the primary's, for a replica), in
    a unit of work that wrote nothing. Anything else is raised as it comes: a statement that ran
    past its timeout is not run twice."""
    session = state.session
    if not state.is_select or session.info.get("wrote"):
        return None  # SQLAlchemy runs it as usual
    try:
        return state.invoke_statement()
    except DBAPIError as error:
        replica = session.info.get("replica")
        if not (error.connection_invalidated or (replica is not None and connection_lost(error))):
            raise
        if replica is not None:
            replica.failed(error)
            session.info["replica"] = None  # this request now reads on the primary
        log.warning("database connection lost before a read; running it again on a new one")
        session.rollback()
        return state.invoke_statement()


@event.listens_for(Session, "after_flush")
def _note_the_write(session: Session, _flush_context: Any) -> None:
    """A flush wrote: the rest of the request reads on the primary, and the request commits."""
    session.info["wrote"] = True


def wrote(session: Any) -> bool:
    """Whether this unit of work has written, or holds changes not yet flushed."""
    return bool(session.info.get("wrote") or session.new or session.dirty or session.deleted)


def connection_lost(error: DBAPIError) -> bool:
    """Whether the error says the server or the connection to it went away (not the statement)."""
    return error.connection_invalidated or isinstance(error, (OperationalError, InterfaceError))


class ReadEngine:
    """The read engine and the replicas, as a Flask extension: created unbound, bound to each
    app in `init_app`. On SQLite, where a round trip is a function call, there is none and
    every statement runs on the main engine."""

    def init_app(self, app: Flask) -> None:
        uri = app.config["SQLALCHEMY_DATABASE_URI"]
        engine = None
        replicas: list[Replica] = []
        if is_postgresql(uri) and behind_a_transaction_pooler(app):
            # One pool on the primary: a request that held a pooled server connection in one
            # transaction while it waited for a second one (a read beside its writes) could wait
            # forever once every server connection is held that way; with one, it never waits
            # holding another. The pooler, not a second pool, keeps idle connections cheap.
            with app.app_context():
                engine = current_app.extensions["sqlalchemy"].engine
            set_in_each_transaction(engine, _settings_of_the_request(app))
        elif is_postgresql(uri):
            engine = _read_engine(app, uri, "reads")
        if engine is not None:
            for n, replica_uri in enumerate(app.config.get("DATABASE_REPLICA_URLS") or [], start=1):
                replica_uri = normalise_url(replica_uri)
                check_url(replica_uri, "DATABASE_REPLICA_URLS")
                name = f"replica{n}"
                replicas.append(Replica(name, _read_engine(app, replica_uri, name, connect_timeout=2)))
        elif app.config.get("DATABASE_REPLICA_URLS"):
            raise ConfigurationError("DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL")
        app.extensions["read_engine"] = engine
        app.extensions["read_router"] = ReplicaRouter(app, engine, replicas) if replicas else None
        if replicas:
            app.after_request(_remember_write_position)
        _forked_engines.update(engines(app))


def _read_engine(app: Flask, uri: str, name: str, connect_timeout: int | None = None) -> Engine:
    """An autocommit pool for the reads of GET requests, with the read timeout; its connections
    carry `application_name` so that `pg_stat_activity` tells the pools apart. A replica's
    connect timeout is libpq's shortest (2 s): an unreachable one stalls its health check no longer.

    Behind a transaction pooler (where only replicas have a read pool) it is not autocommit: a
    statement outside a transaction is a transaction of its own, which a `SET LOCAL` cannot reach,
    and a plain `SET` would stay on a server connection that the pooler then hands to other
    clients. So a unit of work's reads run in one transaction that starts with the settings and is
    rolled back when the connection returns."""
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    settings = server_settings(app.config["DB_READ_TIMEOUT_MS"])
    pooled = behind_a_transaction_pooler(app)
    connect_args = {key: value for key, value in options["connect_args"].items() if key != "options"}
    connect_args["application_name"] = f"{app.config['DB_APPLICATION_NAME']}:{name}"
    if not pooled:
        connect_args["options"] = _startup_options(settings)
    if connect_timeout is not None:
        connect_args["connect_timeout"] = min(connect_timeout, connect_args.get("connect_timeout", 2))
    engine = create_engine(uri, **{
        **options,
        "connect_args": connect_args,
        # a single-statement read needs no transaction, and so there is nothing to roll back when
        # it returns, nor when the session that used it closes
        **({"pool_reset_on_return": "rollback"} if pooled else
           {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None, "skip_autocommit_rollback": True}),
        # Optimistic disconnect handling (see `Session.execute`): a ping would cost every GET a
        # round trip to find what a read that fails finds anyway, and a read is safe to run again.
        "pool_pre_ping": False,
    })
    if pooled:
        set_in_each_transaction(engine, lambda: settings)
    return engine


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

    def refresh(self, max_lag: float, primary_position: Callable[[], int | None]) -> None:
        """Ask the standby how far behind it is; log when it starts or stops being skipped."""
        self.checked_at = time.monotonic()
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


class ReplicaRouter:
    """Picks the replica of a GET request's reads: one recent enough for this client, else none
    (the primary). Write positions live in Redis (`<RATELIMIT_KEY_PREFIX>:wal-position:<user id>`)
    so that every worker and host honours them.

    Each worker checks its replicas' lag and replay position on a background thread of its own,
    every REPLICA_CHECK_SECONDS: no request ever waits for a probe, and an unreachable replica
    holds nothing but that thread (started in the worker, after the fork: threads do not survive one).
    """

    def __init__(self, app: Flask, primary: Engine, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.primary = primary
        self.max_lag = float(app.config["REPLICA_MAX_LAG_SECONDS"])
        self.check_every = float(app.config["REPLICA_CHECK_SECONDS"])
        self.redis = redis.Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=0.5, socket_timeout=0.5)
        self.keep_max = self.redis.register_script(_KEEP_MAX)
        self.key_prefix = f"{app.config['RATELIMIT_KEY_PREFIX']}:wal-position:"
        self._turn = itertools.count()
        self._watcher: tuple[int, threading.Thread] | None = None
        self._checked, self._stopped = threading.Event(), threading.Event()

    def choose(self) -> Replica | None:
        """The replica this request reads on, or None for the primary (counted either way)."""
        self._watch()
        client = reader_id()
        needed = 0
        if client is not None:
            position = self.position_of(client)
            if position is None:
                return self._on_primary("position_unknown")
            needed = position
        turn = next(self._turn) % len(self.replicas)
        behind_client = False
        for replica in self.replicas[turn:] + self.replicas[:turn]:
            if replica.lag is None or replica.lag > self.max_lag:
                continue
            if replica.replayed < needed:
                behind_client = True
                continue
            READS.labels(replica.name, "caught_up" if needed else "lag_ok").inc()
            return replica
        if behind_client:
            return self._on_primary("own_write")
        lagging = any(replica.lag is not None for replica in self.replicas)
        return self._on_primary("lagging" if lagging else "unavailable")

    @staticmethod
    def _on_primary(reason: str) -> None:
        READS.labels("primary", reason).inc()
        return None

    def _watch(self) -> None:
        """Start this process's checking thread, once: until its first round, reads go to the primary."""
        pid = os.getpid()
        if self._watcher is None or self._watcher[0] != pid:
            self._checked, self._stopped = threading.Event(), threading.Event()
            thread = threading.Thread(target=self._check_until_stopped, name="replica-checks", daemon=True)
            self._watcher = (pid, thread)
            thread.start()

    def _check_until_stopped(self) -> None:
        while not self._stopped.is_set():
            self.check_all()
            self._checked.set()
            self._stopped.wait(self.check_every)

    def start_checks(self, wait: float = 0.0) -> bool:
        """Start checking now rather than at the first read; with `wait`, wait up to that many
        seconds for the first round (a test, or a worker that wants its replicas from the start)."""
        self._watch()
        return self._checked.wait(wait) if wait else self._checked.is_set()

    def stop_checks(self) -> None:
        if self._watcher is not None:
            self._stopped.set()

    def check_all(self) -> None:
        for replica in self.replicas:
            replica.refresh(self.max_lag, self.primary_position)

    def position_of(self, client: int) -> int | None:
        """The WAL position the client's reads must see (0: none kept); None when Redis does not answer."""
        try:
            value = self.redis.get(self.key_prefix + str(client))
        except Exception as error:  # any Redis failure: the primary is always up to date
            log.warning("Redis did not answer for a read-your-writes position (%s); reading on the primary",
                        error)
            return None
        return int(value or 0)

    def primary_position(self) -> int | None:
        """How far the primary has written (None if it does not answer)."""
        try:
            with self.primary.connect() as connection:
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
    if "reader_id" not in g:
        g.reader_id = live_user_id()
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
    for engine in list(_forked_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_the_parents_connections)


def named_engines(app: Flask) -> dict[str, Engine]:
    """Every engine of the app by name: `primary`, and `reads` and `replica<n>` where there are."""
    with app.app_context():
        found = {"primary": current_app.extensions["sqlalchemy"].engine}
    if app.extensions.get("read_engine") not in (None, found["primary"]):  # behind a pooler: the same
        found["reads"] = app.extensions["read_engine"]
    router = app.extensions.get("read_router")
    for replica in router.replicas if router is not None else []:
        found[replica.name] = replica.engine
    return found


def engines(app: Flask) -> list[Engine]:
    """Every engine of the app: the main one, the read engine and the replicas where there are."""
    return list(named_engines(app).values())


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
