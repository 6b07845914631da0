"""The API's read path: one round trip per read on PostgreSQL, and it survives a server restart.

Reads run on their own pool in autocommit without pre-ping (app/database.py), so a
connection that died meanwhile is only found when a read uses it; `reads.run` then
retries once on a new connection.
"""

import os
import time
from datetime import UTC, datetime

import pytest
from flask_jwt_extended import decode_token
from sqlalchemy import Integer, bindparam, cast, func, literal_column, select, text
from sqlalchemy.exc import DBAPIError

from app import create_app
from app.database import _plain, fetch_all
from app.extensions import db, reads
from app.services import posts, sessions
from app.services.tokens import SESSION_CLAIM
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


@pytest.mark.usefixtures("postgresql")
def test_reads_on_connections_the_server_dropped_succeed_on_a_new_connection(app, client, user):
    post = client.post("/api/posts", json={"title": "Kept", "body": "b"}, headers=user.headers).get_json()
    paths = ["/api/posts", f"/api/posts/{post['id']}", f"/api/users/{user.id}/posts"]
    for path in paths:  # every read path has a pooled connection now
        assert client.get(path).status_code == 200
    for path in paths:
        assert _terminate_every_other_connection(app) >= 1
        response = client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert "Kept" in response.get_data(as_text=True)
    with app.app_context():
        assert reads.engine.pool.checkedout() == 1  # this thread's held connection; none left behind


def _backends(app) -> tuple[int, int]:
    """The server processes behind a pooled connection of each engine, reads' and writes'."""
    backend = select(func.pg_backend_pid())
    with app.app_context(), db.engine.connect() as connection:
        return reads.run(lambda read: read.execute(backend).scalar_one()), connection.execute(backend).scalar_one()


def _backends_alive(app) -> set[int]:
    with app.app_context(), db.engine.connect() as connection:
        return set(connection.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars())


@pytest.mark.usefixtures("postgresql")
def test_a_thread_reads_on_one_held_connection_until_its_engine_is_disposed(make_app, user):
    """A sync worker serves one request at a time: its reads keep one connection of the read
    pool rather than checking one out and in per read, and disposing of the engine closes it."""
    other = make_app()
    client = other.test_client()
    backend_of_each_read = set()
    with other.app_context():
        engine = reads.engine
    for _ in range(3):
        assert client.get(f"/api/posts?author_id={user.id}").status_code == 200
        assert client.get("/api/users/me", headers=user.headers).status_code == 200
        with other.app_context():
            backend_of_each_read.add(reads.run(lambda read: read.execute(select(func.pg_backend_pid())).scalar_one()))
    assert len(backend_of_each_read) == 1
    assert engine.pool.checkedout() == 1
    engine.dispose()
    deadline = time.monotonic() + 5  # a backend exits just after its client hangs up
    while backend_of_each_read & _backends_alive(other) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not backend_of_each_read & _backends_alive(other)


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


@pytest.mark.usefixtures("postgresql")
def test_a_current_pages_304_on_a_dropped_connection_is_still_304(app, client, user):
    """The 304 reads the page's stamps alone, on the driver's own cursor (`fetch_all`);
    a dead connection there is replaced as for every other read."""
    client.post("/api/posts", json={"title": "Kept", "body": "b"}, headers=user.headers)
    tag = client.get("/api/posts").headers["ETag"]
    assert client.get("/api/posts", headers={"If-None-Match": tag}).status_code == 304
    assert _terminate_every_other_connection(app) >= 1
    assert client.get("/api/posts", headers={"If-None-Match": tag}).status_code == 304
    with app.app_context():
        assert reads.engine.pool.checkedout() == 1  # this thread's held connection; none left behind


@pytest.mark.usefixtures("postgresql")
def test_a_read_that_finds_a_missing_row_on_a_dropped_connection_is_still_404(app, client):
    assert client.get("/api/posts").status_code == 200
    _terminate_every_other_connection(app)
    assert_problem(client.get("/api/posts/999999"), 404)
    _terminate_every_other_connection(app)
    assert_problem(client.get("/api/users/999999/posts"), 404)


@pytest.mark.usefixtures("postgresql")
def test_reads_hold_no_transaction_open(app):
    """Autocommit: no BEGIN before a read and nothing to roll back after it."""
    import psycopg2.extensions

    def transaction_status(connection):
        connection.execute(text("SELECT 1"))
        return connection.connection.dbapi_connection.get_transaction_status()

    with app.app_context():
        assert reads.run(transaction_status) == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        with db.engine.connect() as connection:  # the main engine still opens transactions
            assert transaction_status(connection) == psycopg2.extensions.TRANSACTION_STATUS_INTRANS


def test_a_read_error_other_than_a_lost_connection_is_not_retried(app):
    calls = []

    def failing(connection):
        calls.append(1)
        connection.execute(text("SELECT * FROM no_such_table"))

    with app.app_context(), pytest.raises(DBAPIError):
        reads.run(failing)
    assert calls == [1]


def test_reads_are_503_problem_json_while_the_server_is_down():
    down = "postgresql://postgres@127.0.0.1:9/app_test"  # nothing listens on the discard port
    app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": down, "DB_CONNECT_TIMEOUT": 1})
    client = app.test_client()
    for path in ["/api/posts", "/api/posts/1", "/api/users/1/posts"]:
        response = client.get(path)
        assert_problem(response, 503)
        assert response.headers["Retry-After"] == "5"


def _read_statements(user_id: int, post_id: int, session_id: str) -> list[tuple[str, object, dict]]:
    token = {"session_id": session_id, "kind": "api", "at": datetime.now(UTC), "user_id": user_id}
    return [
        ("first page", posts._page_statement(False, False, False, False, True), {"limit": 21}),
        ("a page's stamps", posts._page_statement(False, False, False, False, False), {"limit": 21}),
        ("an author's page after a cursor", posts._page_statement(True, True, False, False, True),
         {"limit": 21, "author_id": user_id, "after_at": datetime.now(UTC), "after_id": 2**31}),
        ("one post", posts._ONE_POST, {"post_id": post_id}),
        ("the token's user", sessions._TOKEN_USER, token),
        ("the token's user and another", sessions._TOKEN_USERS, {**token, "other_id": user_id}),
        ("an admin cookie's user", sessions._SESSION_USER, {"session_id": session_id, "kind": "api",
                                                             "at": datetime.now(UTC)}),
    ]


def test_fetch_all_gives_the_rows_sqlalchemy_gives(app, client, user):
    """The read path's rows come from the driver's cursor on PostgreSQL (`fetch_all`): the same
    values, of the same types (an enum, aware datetimes), under the same names."""
    post = client.post("/api/posts", json={"title": "Kept", "body": "b"}, headers=user.headers).get_json()
    with app.app_context():
        session_id = decode_token(user.headers["Authorization"].split()[1])[SESSION_CLAIM]
        for name, statement, parameters in _read_statements(user.id, post["id"], session_id):
            with reads.engine.connect() as connection:
                fetched = fetch_all(connection, statement, parameters)
                expected = connection.execute(statement, parameters).all()
            assert fetched, name
            assert [tuple(row) for row in fetched] == [tuple(row) for row in expected], name
            assert [type(value) for value in fetched[0]] == [type(value) for value in expected[0]], name
            assert fetched[0]._fields == tuple(expected[0]._fields), name
            on_the_driver = _plain(statement, reads.engine.dialect) is not None
            assert on_the_driver == (reads.engine.dialect.name == "postgresql"), name


def test_a_statement_the_driver_refuses_raises_as_sqlalchemy_would(app):
    refused = select(func.no_such_function(bindparam("n")).label("value"))
    with app.app_context():
        checked_out = reads.engine.pool.checkedout()
        with pytest.raises(DBAPIError) as raised, reads.engine.connect() as connection:
            fetch_all(connection, refused, {"n": 1})
        assert not raised.value.connection_invalidated
        assert reads.engine.pool.checkedout() == checked_out


# ---- statements kept prepared (app/database.py, `execution_options(prepare=True)`) ----------


def _prepared_on_the_read_connection(app) -> list[str]:
    """What PostgreSQL holds prepared for the read pool's connection (a new app's pool, used by
    one request at a time, has only one)."""
    with app.app_context():
        return sorted(reads.run(lambda connection: connection.execute(
            text("SELECT statement FROM pg_prepared_statements")).scalars().all()))


def _one_row_reads(app, user) -> list:
    """A post, the token's user (`me`) and a current page's 304: what each answered."""
    client = app.test_client()
    post = client.post("/api/posts", json={"title": "Kept", "body": "b"}, headers=user.headers).get_json()
    tag = client.get("/api/posts").headers["ETag"]
    responses = [client.get(f"/api/posts/{post['id']}"), client.get("/api/users/me", headers=user.headers),
                 client.get("/api/posts", headers={"If-None-Match": tag})]
    return [(response.status_code, response.get_data()) for response in responses]


@pytest.mark.usefixtures("postgresql")
def test_the_one_row_reads_are_planned_once_per_connection_then_only_executed(make_app, user):
    app = make_app()
    first = _one_row_reads(app, user)
    assert [status for status, _ in first] == [200, 200, 304]
    prepared = _prepared_on_the_read_connection(app)
    assert len(prepared) == 2, prepared
    assert any("FROM posts JOIN users" in each and "WHERE posts.id = $1" in each for each in prepared)
    assert any("FROM users LEFT OUTER JOIN sessions" in each for each in prepared)
    assert _one_row_reads(app, user)[0][0] == 200
    assert _prepared_on_the_read_connection(app) == prepared  # executed again, not prepared again


@pytest.mark.usefixtures("postgresql")
def test_a_statement_is_prepared_in_the_round_trip_of_its_first_run(make_app, client, user):
    """The first run on a connection sends PREPARE and EXECUTE as one query; later runs EXECUTE."""
    post = client.post("/api/posts", json={"title": "Kept", "body": "b"}, headers=user.headers).get_json()
    app = make_app()
    with app.app_context():
        backend = reads.run(lambda connection: connection.execute(select(func.pg_backend_pid())).scalar_one())

    def last_query() -> str:
        with app.app_context(), db.engine.connect() as other:
            return other.execute(text("SELECT query FROM pg_stat_activity WHERE pid = :pid"),
                                 {"pid": backend}).scalar_one()

    reader = app.test_client()
    assert reader.get(f"/api/posts/{post['id']}").get_json() == post
    first = last_query()
    assert first.startswith("PREPARE app_read_") and "; EXECUTE app_read_" in first, first
    assert reader.get(f"/api/posts/{post['id']}").get_json() == post
    assert last_query().startswith("EXECUTE app_read_")


@pytest.mark.usefixtures("postgresql")
def test_a_read_whose_prepared_statement_the_server_forgot_still_answers(make_app, user):
    """`DISCARD ALL` or a pooler's reset drops a connection's prepared statements behind the app's
    back: the read runs as plain SQL, and its statement is prepared afresh the next time."""
    app = make_app()
    statuses = [status for status, _ in _one_row_reads(app, user)]
    with app.app_context():
        reads.run(lambda connection: connection.exec_driver_sql("DEALLOCATE ALL"))
    assert _prepared_on_the_read_connection(app) == []
    assert [status for status, _ in _one_row_reads(app, user)] == statuses == [200, 200, 304]
    assert [status for status, _ in _one_row_reads(app, user)] == statuses
    assert len(_prepared_on_the_read_connection(app)) == 2


@pytest.mark.usefixtures("postgresql")
def test_with_prepared_statements_off_no_statement_is_kept_prepared(make_app, user):
    app = make_app(DB_PREPARED_STATEMENTS=False)
    assert [status for status, _ in _one_row_reads(app, user)] == [200, 200, 304]
    assert _prepared_on_the_read_connection(app) == []


def test_a_kept_prepared_statement_gives_what_its_plain_sql_gives(app):
    """Parameters become `$n` in order of first use, however often they appear, and the `%`
    that pyformat doubles is one `%` again."""
    number = cast(bindparam("n"), Integer)
    statement = select(literal_column("'50%'").label("share"), number.label("n"), (number + 1).label("next"))
    with app.app_context(), reads.engine.connect() as connection:
        plain = fetch_all(connection, statement, {"n": 7})
        for _ in range(2):  # prepared on the first run, executed on the second
            assert fetch_all(connection, statement.execution_options(prepare=True), {"n": 7}) == plain
    assert [tuple(row) for row in plain] == [("50%", 7, 8)]


@pytest.mark.usefixtures("postgresql")
def test_a_value_the_prepared_parameter_cannot_hold_matches_nothing_as_in_plain_sql(app):
    """`posts.id` is an `integer`: its prepared parameter cannot hold 2**40, which the plain SQL's
    literal simply compares with and finds in no row."""
    with app.app_context(), reads.engine.connect() as connection:
        for _ in range(2):  # prepared, then executed
            assert fetch_all(connection, posts._ONE_POST, {"post_id": 2**40}) == []
        assert fetch_all(connection, posts._ONE_POST, {"post_id": 1}) is not None  # the connection still reads
