"""The app through a real PgBouncer in transaction mode (Debian's package, its defaults but
`pool_mode = transaction`), in front of the suite's PostgreSQL database.

PgBouncer refuses the `options` startup parameter that carries the app's per-connection settings
(statement timeouts, `jit=off`, ...). With `DB_POOLER=transaction` the app sends them as `SET LOCAL`
in each transaction instead (app/database.py, docs/decisions/0013): these tests prove that they
reach the server on every pool, that they never outlive their transaction on a server connection
the pooler shares, and that the API works through the pooler, under load too.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import psycopg2
import pytest
import requests
from sqlalchemy import column, create_engine, func, select, table, text
from sqlalchemy.engine import make_url

from app.database import normalise_url, server_settings
from app.extensions import db
from scripts.live_server import LiveServer
from scripts.pgbouncer import PgBouncer, pgbouncer_binary
from tests.helpers import PASSWORD, posts_locked, start_gunicorn

pytestmark = pytest.mark.skipif(pgbouncer_binary() is None,
                                reason="pgbouncer is not installed (.ci/run installs Debian's pgbouncer)")

POOL_SIZE = 2  # server connections per database: fewer than the app's client connections
PG_SETTINGS = table("pg_settings", column("name"), column("setting"))


@pytest.fixture(scope="module")
def postgresql_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PgBouncer pools PostgreSQL connections (set TEST_DATABASE_URL)")
    return database_url


@pytest.fixture(scope="module")
def bouncer(postgresql_url: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer.start(postgresql_url, pool_size=POOL_SIZE)
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module")
def pooled_server(app, bouncer: PgBouncer, postgresql_url: str) -> Iterator[LiveServer]:
    """The app under gunicorn (4 workers, each with a pool for writes and one for reads) through
    PgBouncer, with `DB_POOLER=transaction`."""
    server = start_gunicorn(bouncer.url(postgresql_url), workers=4, env={"DB_POOLER": "transaction"})
    yield server
    server.stop()


def settings_seen(connection) -> dict[str, str]:
    """The server's value of each setting the app sends (a SELECT: a GET request reads it on its read pool)."""
    return {name: connection.execute(select(PG_SETTINGS.c.setting).where(PG_SETTINGS.c.name == name)).scalar_one()
            for name in server_settings(0)}


def test_pgbouncer_refuses_the_settings_sent_when_connecting(make_app, bouncer, postgresql_url):
    """Why `DB_POOLER` exists: with the default (`none`), the settings travel in the `options`
    startup parameter, which PgBouncer refuses; the app is then not ready."""
    through = bouncer.url(postgresql_url)
    with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter: options"):
        psycopg2.connect(make_url(through).render_as_string(hide_password=False).replace("+psycopg2", ""),
                         options="-c jit=off")
    client = make_app(SQLALCHEMY_DATABASE_URI=through).test_client()
    assert client.get("/health/ready").status_code == 503
    with_pooler = make_app(SQLALCHEMY_DATABASE_URI=through, DB_POOLER="transaction").test_client()
    assert with_pooler.get("/health/ready").status_code == 200


def test_every_transaction_runs_with_the_request_settings(make_app, bouncer, postgresql_url):
    """Writes and the command line with DB_STATEMENT_TIMEOUT_MS, a GET's reads with
    DB_READ_TIMEOUT_MS, and every other setting of `server_settings`, through the pooler."""
    app = make_app(SQLALCHEMY_DATABASE_URI=bouncer.url(postgresql_url), DB_POOLER="transaction",
                   DB_STATEMENT_TIMEOUT_MS=5678, DB_READ_TIMEOUT_MS=1234)
    with app.test_request_context("/api/posts", method="POST"):  # writes: the main pool
        assert settings_seen(db.session) == server_settings(5678)
        db.session.remove()
    with app.test_request_context("/api/posts"):  # a GET's reads
        assert settings_seen(db.session) == server_settings(1234)
        db.session.remove()
    with app.app_context():  # the command line's unit of work: the main pool
        assert settings_seen(db.session) == server_settings(5678)
        db.session.remove()


def test_the_settings_end_with_their_transaction(make_app, postgresql_url):
    """A server connection serves every client of the pooler in turn: the next client on the same
    backend finds the server's own settings, not the app's."""
    single = PgBouncer.start(postgresql_url, pool_size=1)
    direct = create_engine(normalise_url(postgresql_url))
    try:
        with direct.connect() as connection:
            defaults = settings_seen(connection)
        app = make_app(SQLALCHEMY_DATABASE_URI=single.url(postgresql_url), DB_POOLER="transaction",
                       DB_READ_TIMEOUT_MS=1234)
        with app.test_request_context("/api/posts"):
            app_backend = db.session.execute(select(func.pg_backend_pid())).scalar_one()
            assert settings_seen(db.session) == server_settings(1234) != defaults
            db.session.remove()
        other = create_engine(normalise_url(single.url(postgresql_url)))
        with other.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == app_backend
            assert settings_seen(connection) == defaults
        other.dispose()
    finally:
        direct.dispose()
        single.stop()


def register_and_sign_in(base: str, session: requests.Session) -> tuple[int, dict[str, str]]:
    email = f"pooled-{uuid.uuid4().hex[:12]}@example.com"
    created = session.post(f"{base}/api/users", json={"email": email, "name": "Pooled", "password": PASSWORD},
                           timeout=10)
    assert created.status_code == 201, created.text
    login = session.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    assert login.status_code == 200, login.text
    return created.json()["id"], {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_the_api_main_flows_work_through_pgbouncer(pooled_server):
    base, http = pooled_server.url, requests.Session()
    ann_id, ann = register_and_sign_in(base, http)
    bob_id, bob = register_and_sign_in(base, http)
    me = http.get(f"{base}/api/users/me", headers=ann, timeout=10)
    assert me.status_code == 200 and me.json()["id"] == ann_id
    titles = ["Pooled connections", "Transaction mode", "Settings per transaction"]
    posted = [http.post(f"{base}/api/posts", headers=ann, json={"title": title, "body": f"About {title.lower()}."},
                        timeout=10) for title in titles]
    assert [response.status_code for response in posted] == [201, 201, 201]
    page = http.get(f"{base}/api/posts?limit=2", timeout=10)
    assert page.status_code == 200
    assert [post["title"] for post in page.json()] == titles[::-1][:2]
    rest = http.get(page.links["next"]["url"], timeout=10)
    assert [post["title"] for post in rest.json()] == titles[:1]
    found = http.get(f"{base}/api/posts", params={"q": "transaction"}, timeout=10)
    assert found.status_code == 200
    assert {post["title"] for post in found.json()} == {"Transaction mode", "Settings per transaction"}
    assert http.get(f"{base}/api/posts/{posted[0].json()['id']}", timeout=10).json()["title"] == titles[0]
    assert http.put(f"{base}/api/users/{ann_id}/follow", headers=bob, timeout=10).status_code in (200, 201, 204)
    feed = http.get(f"{base}/api/feed", headers=bob, timeout=10)
    assert feed.status_code == 200 and len(feed.json()) == 3
    assert http.post(f"{base}/api/auth/logout", headers=ann, timeout=10).status_code == 204
    assert http.get(f"{base}/api/users/me", headers=ann, timeout=10).status_code == 401
    assert bob_id != ann_id


THREADS = 8
REQUESTS_PER_THREAD = 60


def test_no_request_fails_under_load_through_pgbouncer(pooled_server, bouncer, postgresql_url):
    """Eight clients read, search and write at once through 4 gunicorn workers, twice as many as
    PgBouncer's server connections, so transactions share backends and requests wait for one. Every
    request succeeds: none waits for a server connection while it holds another."""
    base = pooled_server.url
    statuses: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        http = requests.Session()
        try:
            _, headers = register_and_sign_in(base, http)
            for n in range(REQUESTS_PER_THREAD):
                if n % 4 == 0:
                    response = http.post(f"{base}/api/posts", headers=headers, timeout=10,
                                         json={"title": f"Load {n}", "body": "Through the pooler."})
                elif n % 4 == 1:
                    response = http.get(f"{base}/api/posts", params={"q": "pooler"}, timeout=10)
                elif n % 4 == 2:
                    response = http.get(f"{base}/api/users/me", headers=headers, timeout=10)
                else:
                    response = http.get(f"{base}/api/posts?limit=10", timeout=10)
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code >= 400:
                        failures.append(f"{response.request.method} {response.request.path_url}: "
                                        f"{response.status_code} {response.text[:200]}")
        except (requests.RequestException, AssertionError) as error:
            with lock:
                failures.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [], failures[:5]
    assert sum(statuses.values()) == THREADS * REQUESTS_PER_THREAD
    database = make_url(postgresql_url).database
    clients = [row for row in bouncer.show("CLIENTS") if row["database"] == database]
    servers = [row for row in bouncer.show("SERVERS") if row["database"] == database]
    assert len(clients) > POOL_SIZE >= len(servers) > 0, (len(clients), len(servers))


@pytest.fixture
def locked_posts(postgresql_url: str) -> Iterator[None]:
    """Another session, straight to PostgreSQL, holds an exclusive lock on `posts`."""
    with posts_locked(postgresql_url):
        yield


READ_TIMEOUT_MS = 500
STATEMENT_TIMEOUT_MS = 800


@pytest.fixture(scope="module")
def impatient_server(app, bouncer: PgBouncer, postgresql_url: str) -> Iterator[LiveServer]:
    server = start_gunicorn(bouncer.url(postgresql_url), workers=2, env={
        "DB_POOLER": "transaction", "DB_READ_TIMEOUT_MS": str(READ_TIMEOUT_MS),
        "DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS)})
    yield server
    server.stop()


def test_a_read_blocked_by_a_lock_is_503_within_the_read_timeout(impatient_server, locked_posts):
    """The read timeout reaches the server through the pooler: the client, which gives up one
    second after DB_READ_TIMEOUT_MS, has its 503 by then."""
    for path in ["/api/posts", "/api/posts?q=anything"]:
        response = requests.get(impatient_server.url + path, timeout=READ_TIMEOUT_MS / 1000 + 1)
        assert response.status_code == 503, response.text
        assert response.headers["Content-Type"] == "application/problem+json"
        assert "took too long" in response.json()["detail"]


def test_a_write_blocked_by_a_lock_is_503_within_the_statement_timeout(impatient_server, postgresql_url):
    base = impatient_server.url
    _, headers = register_and_sign_in(base, requests.Session())
    engine = create_engine(normalise_url(postgresql_url))
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(text("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE"))
            response = requests.post(f"{base}/api/posts", headers=headers, json={"title": "Blocked", "body": "b"},
                                     timeout=STATEMENT_TIMEOUT_MS / 1000 + 1)
        assert response.status_code == 503, response.text
        assert "took too long" in response.json()["detail"]
    finally:
        engine.dispose()
