"""Where a request's statements run, and that reads survive a server restart.

`db.session` is the one way to read: a GET request's reads run on the read engine (an
autocommit pool with the read timeout), a request that writes runs everything on the main
engine in one transaction, committed at its boundary (app/database.py, app/transaction.py).
"""

import os
import socket
import time

import pytest
from sqlalchemy import event, func, select, text

from app import create_app
from app.extensions import db
from tests.helpers import assert_problem


@pytest.fixture
def postgresql(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs a database server that can drop connections")


def _terminate_every_other_connection(app) -> int:
    """What a PostgreSQL restart does to the app's pools, without restarting the shared server."""
    with app.app_context(), db.engine.connect() as killer:
        return killer.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )).scalar_one()


class Statements:
    """The statements each engine ran, as SQLAlchemy's public cursor events see them."""

    def __init__(self, app) -> None:
        self.by_engine: dict[str, list[str]] = {}
        with app.app_context():
            self.engines = {"primary": db.engine, "reads": app.extensions["read_engine"]}
        for name, engine in self.engines.items():
            event.listen(engine, "before_cursor_execute", self._counter(name))

    def _counter(self, name: str):
        def count(_connection, _cursor, statement, *_args) -> None:
            self.by_engine.setdefault(name, []).append(statement)
        return count

    def clear(self) -> None:
        self.by_engine.clear()

    def on(self, name: str) -> int:
        return len(self.by_engine.get(name, []))


@pytest.mark.usefixtures("postgresql")
def test_a_get_reads_on_the_read_engine_and_a_write_runs_on_the_primary(make_app, user):
    app = make_app()
    statements = Statements(app)
    client = app.test_client()
    created = client.post("/api/posts", json={"title": "Routed", "body": "b"}, headers=user.headers)
    assert created.status_code == 201
    assert statements.on("primary") >= 2 and statements.on("reads") == 0  # the token and the insert
    statements.clear()
    assert client.get(f"/api/posts/{created.get_json()['id']}", headers=user.headers).status_code == 200
    assert client.get("/api/users/me", headers=user.headers).status_code == 200
    assert statements.on("reads") >= 2 and statements.on("primary") == 0


@pytest.mark.usefixtures("postgresql")
def test_a_get_request_holds_no_transaction_open_on_the_server(make_app, user):
    """Autocommit: a GET's reads leave their connection idle, never idle in a transaction."""
    app = make_app()
    client = app.test_client()
    for _ in range(3):
        assert client.get("/api/posts").status_code == 200
    with app.app_context(), db.engine.connect() as connection:
        states = connection.execute(text(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
            "AND right(application_name, 6) = :pool").bindparams(pool=":reads")).scalars().all()
    assert states and set(states) == {"idle"}


@pytest.mark.usefixtures("postgresql")
def test_reads_on_connections_the_server_dropped_succeed_on_a_new_connection(app, client, user):
    post = client.post("/api/posts", json={"title": "Kept", "body": "b"}, headers=user.headers).get_json()
    paths = ["/api/posts", f"/api/posts/{post['id']}", f"/api/users/{user.id}/posts", "/api/users/me"]
    for path in paths:  # every read path has a pooled connection now
        assert client.get(path, headers=user.headers).status_code == 200
    for path in paths:
        assert _terminate_every_other_connection(app) >= 1
        response = client.get(path, headers=user.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
    created = client.post("/api/posts", json={"title": "After", "body": "b"}, headers=user.headers)
    assert created.status_code == 201  # and the primary's pool recovers as well


@pytest.mark.usefixtures("postgresql")
def test_a_current_pages_304_on_a_dropped_connection_is_still_304(app, client, user):
    client.post("/api/posts", json={"title": "Kept", "body": "b"}, headers=user.headers)
    tag = client.get("/api/posts").headers["ETag"]
    assert client.get("/api/posts", headers={"If-None-Match": tag}).status_code == 304
    assert _terminate_every_other_connection(app) >= 1
    assert client.get("/api/posts", headers={"If-None-Match": tag}).status_code == 304


@pytest.mark.usefixtures("postgresql")
def test_a_read_that_finds_a_missing_row_on_a_dropped_connection_is_still_404(app, client):
    assert client.get("/api/posts").status_code == 200
    _terminate_every_other_connection(app)
    assert_problem(client.get("/api/posts/999999"), 404)
    _terminate_every_other_connection(app)
    assert_problem(client.get("/api/users/999999/posts"), 404)


def _backends(app) -> tuple[int, int]:
    """The server processes behind a pooled connection of each engine, reads' and writes'."""
    backend = select(func.pg_backend_pid())
    with app.app_context(), app.extensions["read_engine"].connect() as read, db.engine.connect() as write:
        return read.execute(backend).scalar_one(), write.execute(backend).scalar_one()


def _backends_alive(app) -> set[int]:
    with app.app_context(), db.engine.connect() as connection:
        return set(connection.execute(text("SELECT pid FROM pg_stat_activity")).scalars())


@pytest.mark.usefixtures("postgresql")
def test_a_forked_worker_reads_and_writes_on_connections_of_its_own(app):
    """gunicorn forks its workers from a master that has loaded the app (`preload_app`); a
    child that used a connection the parent had pooled would share its socket, and closing
    it would end the parent's session."""
    parent = _backends(app)
    before_fork = _backends_alive(app)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.write(write_end, repr(_backends(app)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        in_child = pipe.read()
    os.waitpid(child, 0)
    assert in_child, "the child could not read"
    in_child_backends = {int(pid) for pid in in_child.strip("()").split(",")}
    assert len(in_child_backends) == 2 and not in_child_backends & before_fork  # new connections, its own
    assert set(parent) <= _backends_alive(app)  # the child closed none of the parent's
    assert _backends(app)  # and the parent still reads and writes


def test_reads_are_503_problem_json_while_the_server_is_down():
    down = "postgresql://postgres@127.0.0.1:9/app_test"  # nothing listens on the discard port
    app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": down, "DB_CONNECT_TIMEOUT": 1})
    client = app.test_client()
    for path in ["/api/posts", "/api/posts/1", "/api/users/1/posts"]:
        response = client.get(path)
        assert_problem(response, 503)
        assert response.headers["Retry-After"] == "5"


@pytest.mark.usefixtures("postgresql")
def test_an_unreachable_replica_never_holds_a_request(make_app, redis_keys, user):
    """Replica health is checked on a thread of the worker's own: a standby that accepts the
    connection and then says nothing stalls that thread, never a request."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nobody ever answers
        port = silent.getsockname()[1]
        app = make_app(DATABASE_REPLICA_URLS=[f"postgresql://postgres@127.0.0.1:{port}/app_test"],
                       REDIS_URL=redis_keys.url, RATELIMIT_KEY_PREFIX=redis_keys.prefix,
                       REPLICA_CHECK_SECONDS=0.1)
        router = app.extensions["read_router"]
        try:
            client = app.test_client()
            for path in ["/api/posts", "/api/users/me"]:
                started = time.monotonic()
                assert client.get(path, headers=user.headers).status_code == 200
                assert time.monotonic() - started < 1.0  # a probe would wait its 2 s connect timeout
        finally:
            router.stop_checks()
