"""GET /metrics: Prometheus text, behind METRICS_TOKEN, adding up every gunicorn worker's counts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from datetime import timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from app import mail
from app.extensions import db
from app.models import MailStatus, OutboxMessage, utcnow
from config import ConfigurationError
from tests.helpers import PASSWORD, assert_problem, production_settings, start_gunicorn

TOKEN = "metrics-token-for-the-tests-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_app(make_app):
    return make_app(METRICS_TOKEN=TOKEN)


def scrape(client) -> str:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_metrics_do_not_exist_without_a_token(client):
    assert_problem(client.get("/metrics"), 404)
    assert_problem(client.get("/metrics", headers=AUTH), 404)


def test_metrics_refuse_a_missing_or_wrong_token(metrics_app):
    client = metrics_app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert "app_http_requests" not in response.get_data(as_text=True)


def test_metrics_are_not_part_of_the_api_document(metrics_app):
    assert "/metrics" not in metrics_app.test_client().get("/openapi.json").get_json()["paths"]


def test_requests_are_counted_by_route_rule_method_and_status(metrics_app, user):
    client = metrics_app.test_client()
    created = client.post("/api/posts", json={"title": "T", "body": "B"}, headers=user.headers)
    post_id = created.get_json()["id"]
    before = scrape(client)
    rule = "/api/posts/<int:post_id>"
    for _ in range(3):
        assert client.get(f"/api/posts/{post_id}").status_code == 200
    assert client.get("/api/posts/999999").status_code == 404
    client.get("/no/such/path/12345")
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("app_http_requests_total", endpoint=rule, method="GET", status="200") == 3
    assert delta("app_http_requests_total", endpoint=rule, method="GET", status="404") == 1
    assert delta("app_http_requests_total", endpoint="<unmatched>", method="GET", status="404") == 1
    assert delta("app_http_request_duration_seconds_count", endpoint=rule, method="GET") == 4
    assert not any(f"/api/posts/{post_id}" in str(key) for key in samples(after))  # never the raw path
    assert ("app_db_pool_checked_out_connections", (("engine", "primary"),)) in samples(after)


def label_values(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """The series of an exposition (name and labels), without their values."""
    return set(samples(text))


def test_clients_cannot_invent_label_values_with_methods_or_paths(metrics_app, user):
    client = metrics_app.test_client()
    post_id = client.post("/api/posts", json={"title": "T", "body": "B"}, headers=user.headers).get_json()["id"]

    def made_up_requests(seed: str) -> None:
        for n in range(30):
            token = f"{seed}{n}"
            client.open(f"/x{token}", method=f"X{token.upper()}")
            client.open(f"/api/posts/{post_id}", method=f"Q{token.upper()}")
            client.open(f"/api/posts/{n + 5000}?{token}=1", method="get")  # lowercased: still GET
            client.get(f"/no/such/{token}/path?x={token}")
            client.open(f"/api/users/{token}", method="PROPFIND")

    scrape(client)  # the scrape's own series exist from here on
    made_up_requests("a1b2c3")
    before = scrape(client)
    made_up_requests("z9y8x7")  # another batch of new methods and paths
    after = scrape(client)

    assert label_values(after) == label_values(before)  # counts grew, series did not
    methods = {dict(labels).get("method") for _, labels in label_values(after)} - {None}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
    assert "OTHER" in methods
    other = {"endpoint": "<unmatched>", "method": "OTHER", "status": "404"}  # the X… and PROPFIND ones
    assert value(after, "app_http_requests_total", **other) - value(before, "app_http_requests_total", **other) == 60
    assert not any(seed in str(key) for key in label_values(after) for seed in ("a1b2c3", "z9y8x7", "5000"))


def test_bcrypt_work_is_counted(metrics_app):
    client = metrics_app.test_client()
    before = scrape(client)
    registered = client.post("/api/users", json={"email": "b@example.com", "name": "Bea Example",
                                                 "password": PASSWORD, "age": 30})
    assert registered.status_code == 201, registered.get_data(as_text=True)
    client.post("/api/auth/login", json={"email": "b@example.com", "password": PASSWORD})
    client.post("/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
    after = scrape(client)
    assert value(after, "app_bcrypt_operations_total", operation="hash") - value(
        before, "app_bcrypt_operations_total", operation="hash") == 1
    assert value(after, "app_bcrypt_operations_total", operation="check") - value(
        before, "app_bcrypt_operations_total", operation="check") == 2


def test_rate_limit_rejections_are_counted(make_app):
    limited = make_app(METRICS_TOKEN=TOKEN, RATELIMIT_ENABLED=True, RATELIMIT_READ="2/minute",
                       RATELIMIT_STORAGE_URI="memory://",
                       RATELIMIT_KEY_PREFIX=f"metrics-{os.getpid()}-{time.time_ns()}")
    client = limited.test_client()
    before = scrape(client)
    address = {"REMOTE_ADDR": "198.51.100.201"}  # a client of its own: no other test's counts
    statuses = [client.get("/api/posts", environ_base=address).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    after = scrape(client)
    name = "app_rate_limit_rejections_total"
    assert value(after, name, endpoint="/api/posts") - value(before, name, endpoint="/api/posts") == 2


def test_production_refuses_a_guessable_metrics_token():
    from app import create_app

    with pytest.raises(ConfigurationError, match="METRICS_TOKEN"):
        create_app(production_settings(SQLALCHEMY_DATABASE_URI="sqlite://", METRICS_TOKEN="metrics"))


# ---- a live server: several workers, one sum ---------------------------------------------------


@pytest.fixture
def metrics_server(app, database_url, tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left over from an earlier run")  # emptied at start
    server = start_gunicorn(database_url, workers=3, env={"METRICS_TOKEN": TOKEN,
                                                          "PROMETHEUS_MULTIPROC_DIR": str(folder)})
    server.folder = folder
    yield server
    server.stop()


def live_scrape(url: str) -> str:
    response = requests.get(url + "/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200
    return response.text


def test_counts_add_up_across_workers_and_survive_a_killed_worker(metrics_server):
    url, rule = metrics_server.url, "/api/posts/<int:post_id>"
    requests_sent = 60
    for n in range(requests_sent):  # a new connection each: the workers take turns
        assert requests.get(f"{url}/api/posts/{n + 1000}", timeout=10).status_code == 404
    counted = {path.name for path in metrics_server.folder.glob("counter_*.db")}
    assert len(counted) >= 2, f"one worker served everything ({counted}); the sum proves nothing"
    text = live_scrape(url)
    assert value(text, "app_http_requests_total", endpoint=rule, method="GET", status="404") == requests_sent
    assert value(text, "app_http_request_duration_seconds_count", endpoint=rule, method="GET") == requests_sent
    assert value(text, "app_gunicorn_worker_exits_total") == 0

    victim = metrics_server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids = metrics_server.worker_pids()
        if victim not in pids and len(pids) == 3:
            break
        time.sleep(0.1)
    text = live_scrape(url)
    assert value(text, "app_gunicorn_worker_exits_total") == 1
    assert value(text, "app_http_requests_total", endpoint=rule, method="GET", status="404") == requests_sent


def test_live_metrics_pass_promtool(metrics_server):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing (Debian package `prometheus`; .ci/run installs it)")
    requests.get(metrics_server.url + "/api/posts", timeout=10)
    text = live_scrape(metrics_server.url)
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ---- the mail outbox ------------------------------------------------------------------------------


def test_the_outbox_gauges_count_waiting_and_failed_messages_and_the_oldest_age(metrics_app):
    client = metrics_app.test_client()
    text = scrape(client)
    assert value(text, "app_mail_waiting_messages") == 0 and value(text, "app_mail_failed_messages") == 0
    assert value(text, "app_mail_oldest_waiting_age_seconds") == 0
    with metrics_app.test_request_context():
        for to in ("a@example.com", "b@example.com", "c@example.com"):
            mail.enqueue(to, "Reset your password", "reset_password", user=None, link="http://x/?token=t", minutes=30)
        db.session.execute(update(OutboxMessage).where(OutboxMessage.recipient == "a@example.com")
                           .values(created_at=utcnow() - timedelta(minutes=10)))
        db.session.execute(update(OutboxMessage).where(OutboxMessage.recipient == "c@example.com")
                           .values(status=MailStatus.FAILED))
        db.session.commit()
    text = scrape(client)
    assert value(text, "app_mail_waiting_messages") == 2
    assert value(text, "app_mail_failed_messages") == 1
    assert 600 <= value(text, "app_mail_oldest_waiting_age_seconds") < 3600
