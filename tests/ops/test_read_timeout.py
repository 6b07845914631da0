"""Every API read runs under `DB_READ_TIMEOUT_MS`: a slower one is a 503, and the worker moves on."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from app.database import normalise_url
from app.extensions import db
from tests.helpers import assert_problem, posts_locked


@pytest.fixture
def locked_posts(database_url):
    """Another session holds an exclusive lock on `posts`, so any read of it waits."""
    if not database_url.startswith("postgresql"):
        pytest.skip("statement timeouts exist on PostgreSQL only")
    with posts_locked(database_url):
        yield


def test_a_read_past_its_timeout_is_503_with_retry_after(make_app, locked_posts):
    client = make_app(DB_READ_TIMEOUT_MS=200).test_client()
    for path in ["/api/posts", "/api/posts?q=anything", "/api/posts/1"]:
        response = client.get(path)
        body = assert_problem(response, 503)
        assert response.headers["Retry-After"] == "5"
        assert "took too long" in body["detail"]


def test_the_next_read_after_a_timeout_succeeds(make_app, user, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("statement timeouts exist on PostgreSQL only")
    app = make_app(DB_READ_TIMEOUT_MS=200)
    client = app.test_client()
    engine = create_engine(normalise_url(database_url))
    with engine.connect() as connection, connection.begin():
        connection.execute(text("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE"))
        assert client.get("/api/posts").status_code == 503
    engine.dispose()
    assert client.get("/api/posts").status_code == 200


def test_a_read_past_its_timeout_runs_once(make_app, database_url):
    """Its error is raised as it comes: running the statement again would make the client
    wait for the timeout twice. A sequence counts the runs (`nextval` outlives the cancel)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("statement timeouts exist on PostgreSQL only")
    app = make_app(DB_READ_TIMEOUT_MS=200)
    engine = create_engine(normalise_url(database_url))
    with engine.begin() as connection:
        connection.execute(text("DROP SEQUENCE IF EXISTS read_runs"))
        connection.execute(text("CREATE SEQUENCE read_runs"))
    slow = select(func.nextval("read_runs").label("run"), func.pg_sleep(2).label("slept"))
    try:
        with app.test_request_context("/api/posts"), pytest.raises(OperationalError, match="statement timeout"):
            db.session.execute(slow)  # a GET request's read: the read engine, with its timeout
        with engine.connect() as connection:
            assert connection.execute(text("SELECT last_value FROM read_runs")).scalar_one() == 1
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP SEQUENCE read_runs"))
        engine.dispose()
