"""Reads of posts on hot standbys, with read-your-writes, on real streaming replication.

The module starts its own primary and hot standby (scripts/replication.py: initdb,
pg_basebackup -R, pg_ctl, as the `postgres` system user, on free ports) and stops them
afterwards; it is skipped, saying why, where those binaries are missing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import column, create_engine, event, func, select, table

from app import create_app, database
from app.database import normalise_url, server_settings
from app.extensions import db
from app.models import Role
from app.services import users
from config import ConfigurationError
from scripts import replication as pg
from scripts.pgbouncer import PgBouncer, pgbouncer_binary
from tests.admin_support import signed_in
from tests.helpers import PASSWORD, ROOT

DATABASE = "app_test_replicas"
PG_SETTINGS = table("pg_settings", column("name"), column("setting"))


@pytest.fixture(scope="module")
def cluster():
    reason = pg.missing()
    if reason:
        pytest.skip(f"no replication here: {reason}")
    replication = pg.start_replication()
    try:
        replication.primary.query(f"CREATE DATABASE {DATABASE}")
        upgrade = subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT,
                                 capture_output=True, text=True, env=_cli_env(replication.primary.url(DATABASE)))
        assert upgrade.returncode == 0, upgrade.stderr
        replication.wait_for_standby()
        yield replication
    finally:
        replication.stop()


def _cli_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    return {**env, "APP_ENV": "testing", "TEST_DATABASE_URL": url, "FLASK_APP": "wsgi.py", **extra}


@pytest.fixture
def routed(cluster, redis_keys):
    """An app whose post reads go to the standby; its connections carry a name of this test's own."""
    name = f"t{uuid.uuid4().hex[:12]}"
    app = create_app({
        "APP_ENV": "testing",
        "SQLALCHEMY_DATABASE_URI": cluster.primary.url(DATABASE),
        "DATABASE_REPLICA_URLS": [cluster.standby.url(DATABASE)],
        "REDIS_URL": redis_keys.url, "RATELIMIT_KEY_PREFIX": redis_keys.prefix,
        "REPLICA_MAX_LAG_SECONDS": 1.0, "REPLICA_CHECK_SECONDS": 0.1,
        "DB_APPLICATION_NAME": name,
    })
    app.application_name = name
    router = app.extensions["read_router"]
    assert router.start_checks(wait=5), "the worker's replica checks never ran"
    yield app
    router.stop_checks()
    for engine in database.engines(app):
        engine.dispose()
    cluster.resume_replay()
    cluster.wait_for_standby()


def sign_up(client) -> tuple[int, dict[str, str]]:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    created = client.post("/api/users", json={"email": email, "name": "Rep Lica", "password": PASSWORD, "age": 30})
    assert created.status_code == 201, created.get_data(as_text=True)
    login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    return created.get_json()["id"], {"Authorization": f"Bearer {login.get_json()['access_token']}"}


def served(server: str, reason: str) -> float:
    """GET requests so far whose reads `server` answered, for `reason` (app_db_reads_total)."""
    return REGISTRY.get_sample_value("app_db_reads_total", {"server": server, "reason": reason}) or 0.0


def standby_connections(cluster, application_name: str) -> int:
    """How many connections this app holds to the standby."""
    return cluster.standby.query(
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '{application_name}:%'")[0][0]


def test_anonymous_reads_reach_the_standby(cluster, routed):
    client = routed.test_client()
    _, headers = sign_up(client)
    post_id = client.post("/api/posts", json={"title": "Seen", "body": "on the standby"},
                          headers=headers).get_json()["id"]
    cluster.wait_for_standby()
    before = served("replica1", "lag_ok")
    assert client.get(f"/api/posts/{post_id}").status_code == 200
    assert client.get("/api/posts").status_code == 200
    assert served("replica1", "lag_ok") - before == 2
    assert standby_connections(cluster, routed.application_name) >= 1


def test_own_writes_are_read_back_while_the_standby_replays_nothing(cluster, routed):
    client = routed.test_client()
    user_id, headers = sign_up(client)
    cluster.wait_for_standby()
    cluster.pause_replay()
    created = client.post("/api/posts", json={"title": "Mine", "body": "read it back"}, headers=headers)
    post_id = created.get_json()["id"]
    before = served("primary", "own_write")

    assert client.get(f"/api/posts/{post_id}", headers=headers).status_code == 200
    own = client.get(f"/api/users/{user_id}/posts", headers=headers)
    assert [post["id"] for post in own.get_json()] == [post_id]
    listed = client.get("/api/posts?limit=100", headers=headers).get_json()
    assert post_id in [post["id"] for post in listed]
    # the post, the author's list, the main list: each request's reads on the primary
    assert served("primary", "own_write") - before == 3
    missing = cluster.standby.query(f"SELECT count(*) FROM posts WHERE id = {post_id}", DATABASE)[0][0]
    assert missing == 0, "replay was not paused: this test proves nothing"


def test_anonymous_reads_go_to_the_primary_once_the_lag_passes_the_bound(cluster, routed, caplog):
    client = routed.test_client()
    _, headers = sign_up(client)
    cluster.wait_for_standby()
    cluster.pause_replay()
    post_id = client.post("/api/posts", json={"title": "New", "body": "b"}, headers=headers).get_json()["id"]
    time.sleep(routed.config["REPLICA_MAX_LAG_SECONDS"] + 0.5)  # the standby now lags past the bound
    lagging = served("primary", "lagging")
    with caplog.at_level(logging.WARNING, logger="app.database"):
        assert client.get(f"/api/posts/{post_id}").status_code == 200
    assert served("primary", "lagging") - lagging == 1
    assert any("replica replica1 skipped: lag" in record.getMessage() for record in caplog.records)
    lag = REGISTRY.get_sample_value("app_db_replica_lag_seconds", {"replica": "replica1"})
    assert lag > routed.config["REPLICA_MAX_LAG_SECONDS"]
    assert cluster.standby.query(f"SELECT count(*) FROM posts WHERE id = {post_id}", DATABASE)[0][0] == 0

    cluster.resume_replay()
    cluster.wait_for_standby()
    on_standby = served("replica1", "lag_ok")
    deadline = time.monotonic() + 10
    while served("replica1", "lag_ok") == on_standby:  # back on the standby once it has caught up
        assert client.get(f"/api/posts/{post_id}").status_code == 200
        assert time.monotonic() < deadline, "reads did not return to the standby after it caught up"
        time.sleep(0.05)


def test_a_stopped_standby_costs_no_client_an_error(cluster, routed, caplog):
    client = routed.test_client()
    _, headers = sign_up(client)
    post_id = client.post("/api/posts", json={"title": "Kept", "body": "b"}, headers=headers).get_json()["id"]
    cluster.wait_for_standby()
    assert client.get(f"/api/posts/{post_id}").status_code == 200  # a pooled connection to the standby

    statuses: list[int] = []
    moved = served("primary", "failover") + served("primary", "unavailable")
    stopper = threading.Thread(target=cluster.standby.stop, args=("fast",))
    try:
        with caplog.at_level(logging.WARNING, logger="app.database"):
            stopper.start()
            while stopper.is_alive() or len(statuses) < 20:
                statuses.append(client.get(f"/api/posts/{post_id}").status_code)
                statuses.append(client.get("/api/posts").status_code)
            stopper.join()
            after_stop = client.get(f"/api/posts/{post_id}").status_code  # the very next read
        assert set(statuses) == {200}, statuses
        assert after_stop == 200
        assert served("primary", "failover") + served("primary", "unavailable") > moved
        assert any("replica replica1 skipped" in record.getMessage() for record in caplog.records)
    finally:
        stopper.join()
        cluster.standby.start()
    cluster.wait_for_standby()


def test_a_restarted_standby_serves_again_while_the_primary_writes_nothing(cluster, routed):
    """After a restart a standby streams from the start of a segment, behind what it replayed, and
    with no writes on the primary it has no replay time to measure: it is current when it holds
    everything the primary wrote, and must not wait for the next write to serve again."""
    client = routed.test_client()
    _, headers = sign_up(client)
    post_id = client.post("/api/posts", json={"title": "Before", "body": "b"}, headers=headers).get_json()["id"]
    cluster.wait_for_standby()
    cluster.standby.stop("fast")
    cluster.standby.start()
    cluster.wait_for_standby()
    time.sleep(routed.config["REPLICA_MAX_LAG_SECONDS"] + 0.5)  # its last replayed write is now older than that
    before = served("replica1", "lag_ok")
    deadline = time.monotonic() + 5
    while served("replica1", "lag_ok") == before:
        assert client.get(f"/api/posts/{post_id}").status_code == 200
        assert time.monotonic() < deadline, "reads did not return to the restarted standby"
        time.sleep(0.05)
    received, replayed = cluster.standby.query(
        "SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()")[0]
    assert received is None or received != replayed, "the standby streamed since: this test proves nothing"


def test_writes_and_the_reads_of_writing_requests_never_touch_the_standby(cluster, routed):
    client = routed.test_client()
    _, headers = sign_up(client)
    replica_statements: list[str] = []
    router = routed.extensions["read_router"]
    router.stop_checks()  # the worker's own health checks are not a request's statements
    time.sleep(routed.config["REPLICA_CHECK_SECONDS"] * 3)  # let a round in flight finish

    def record(_conn, _cursor, statement, *_args) -> None:
        replica_statements.append(statement)

    for replica in router.replicas:
        event.listen(replica.engine, "before_cursor_execute", record)
    post_id = client.post("/api/posts", json={"title": "W", "body": "b"}, headers=headers).get_json()["id"]
    assert client.patch(f"/api/posts/{post_id}", json={"title": "W2"}, headers=headers).status_code == 200
    assert client.delete(f"/api/posts/{post_id}", headers=headers).status_code == 204
    assert replica_statements == []


def test_flask_db_upgrade_uses_the_primary_only(cluster, redis_keys):
    cluster.primary.query("CREATE DATABASE app_test_replicas_upgrade")
    upgrade = subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, capture_output=True, text=True,
        env=_cli_env(cluster.primary.url("app_test_replicas_upgrade"),
                     DATABASE_REPLICA_URLS=cluster.standby.url("app_test_replicas_upgrade"),
                     REDIS_URL=redis_keys.url, DB_APPLICATION_NAME="upgrade-check"))
    assert upgrade.returncode == 0, upgrade.stderr
    tables = cluster.primary.query("SELECT count(*) FROM alembic_version", "app_test_replicas_upgrade")
    assert tables == [(1,)]
    cluster.wait_for_standby()
    connected = cluster.standby.query("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                                      "LIKE 'upgrade-check:%'")
    assert connected == [(0,)]


def test_replicas_need_redis_and_postgresql():
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "DATABASE_REPLICA_URLS": "postgresql://postgres@127.0.0.1:5432/replica", "REDIS_URL": ""})
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "DATABASE_REPLICA_URLS": "postgresql://postgres@127.0.0.1:5432/replica",
                    "REDIS_URL": "redis://127.0.0.1:6379/0"})


def test_admin_pages_read_on_the_standby_and_see_what_was_written_before_sign_in(cluster, routed):

    client = routed.test_client()
    _, headers = sign_up(client)
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    with routed.app_context():
        users.register(email=email, name="Ad Min", password=PASSWORD, age=None, role=Role.ADMIN)
        db.session.commit()
    cluster.wait_for_standby()
    cluster.pause_replay()
    title = f"written-{uuid.uuid4().hex[:8]}"
    client.post("/api/posts", json={"title": title, "body": "b"}, headers=headers)
    admin = routed.test_client()
    signed_in(admin, SimpleNamespace(email=email, password=PASSWORD))
    own_write = served("primary", "own_write")
    assert title in admin.get("/admin/posts").get_data(as_text=True)
    assert served("primary", "own_write") - own_write == 1

    cluster.resume_replay()
    cluster.wait_for_standby()
    caught_up, deadline = served("replica1", "caught_up"), time.monotonic() + 10
    while served("replica1", "caught_up") == caught_up:
        assert title in admin.get("/admin/posts").get_data(as_text=True)
        assert time.monotonic() < deadline, "admin reads did not move to the caught-up standby"
        time.sleep(0.05)


def _settings_seen(connection) -> dict[str, str]:
    """The server's value of each setting the app sends, read with a SELECT (so, in a GET, on its read pool)."""
    return {name: connection.execute(select(PG_SETTINGS.c.setting).where(PG_SETTINGS.c.name == name)).scalar_one()
            for name in server_settings(0)}


@pytest.mark.skipif(pgbouncer_binary() is None, reason="pgbouncer is not installed (.ci/run installs Debian's)")
def test_behind_pgbouncer_in_transaction_mode_reads_on_the_standby_run_with_the_request_settings(cluster, redis_keys):
    """DB_POOLER=transaction with a replica: a PgBouncer in transaction mode in front of each server,
    one server connection each. A GET's reads on the standby begin with the read settings, which
    end with their transaction (the next client of that server connection finds the server's own);
    writes on the primary run with the statement timeout."""
    primary_url, standby_url = cluster.primary.url(DATABASE), cluster.standby.url(DATABASE)
    before_primary = PgBouncer.start(primary_url, pool_size=1)
    before_standby = PgBouncer.start(standby_url, pool_size=1)
    direct = create_engine(normalise_url(standby_url))
    app = None
    try:
        with direct.connect() as connection:
            standby_defaults = _settings_seen(connection)
        assert standby_defaults != server_settings(1234)
        app = create_app({
            "APP_ENV": "testing", "DB_POOLER": "transaction",
            "SQLALCHEMY_DATABASE_URI": before_primary.url(primary_url),
            "DATABASE_REPLICA_URLS": [before_standby.url(standby_url)],
            "DB_READ_TIMEOUT_MS": 1234, "DB_STATEMENT_TIMEOUT_MS": 5678,
            "REDIS_URL": redis_keys.url, "RATELIMIT_KEY_PREFIX": redis_keys.prefix,
            "REPLICA_MAX_LAG_SECONDS": 1.0, "REPLICA_CHECK_SECONDS": 0.1,
        })
        router = app.extensions["read_router"]
        assert router.start_checks(wait=5), "the worker's replica checks never ran through the pooler"
        router.stop_checks()  # from here on, the standby's one server connection serves this test alone
        time.sleep(app.config["REPLICA_CHECK_SECONDS"] * 3)  # let a round in flight finish
        before = served("replica1", "lag_ok")
        with app.test_request_context("/api/posts"):  # an anonymous GET's reads
            assert db.session.execute(select(func.pg_is_in_recovery())).scalar_one() is True  # the standby
            assert _settings_seen(db.session) == server_settings(1234)
            backend = db.session.execute(select(func.pg_backend_pid())).scalar_one()
            db.session.remove()
        assert served("replica1", "lag_ok") - before == 1
        other = create_engine(normalise_url(before_standby.url(standby_url)))
        with other.connect() as connection:
            assert connection.execute(select(func.pg_backend_pid())).scalar_one() == backend
            assert _settings_seen(connection) == standby_defaults
        other.dispose()
        with app.test_request_context("/api/posts", method="POST"):  # writes: the primary
            assert db.session.execute(select(func.pg_is_in_recovery())).scalar_one() is False
            assert _settings_seen(db.session) == server_settings(5678)
            db.session.remove()
        client = app.test_client()
        _, headers = sign_up(client)
        assert client.post("/api/posts", json={"title": "Pooled", "body": "b"}, headers=headers).status_code == 201
        cluster.wait_for_standby()
        before = served("replica1", "lag_ok")
        page = client.get("/api/posts?limit=1")
        assert page.status_code == 200 and page.get_json()[0]["title"] == "Pooled"
        assert served("replica1", "lag_ok") - before == 1
    finally:
        if app is not None:
            app.extensions["read_router"].stop_checks()
            for engine in database.engines(app):
                engine.dispose()
        direct.dispose()
        before_primary.stop()
        before_standby.stop()
