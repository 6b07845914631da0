"""Fault 5: the hot standby stops in the middle of the load, then starts again.

A primary and a hot standby of its own (scripts/replication.py), gunicorn with
`DATABASE_REPLICA_URLS`, anonymous reads of posts under wrk. Expected: no 5xx while
the standby is down (its reads go to the primary), and reads return to the standby
within seconds of it answering again. Which server served is read from /metrics
(`app_db_reads_total`), scraped every 100 ms.
"""

from __future__ import annotations

import os
import secrets
import threading
import time

import requests

from scripts import replication as pg
from scripts.faults.common import (
    Background,
    expect,
    gunicorn,
    run_scenario,
    sign_up,
    status_summary,
    table,
)

LOAD_SECONDS = int(os.environ.get("FAULTS_SECONDS", 15))
STOP_AT = LOAD_SECONDS // 3
DOWN_FOR = LOAD_SECONDS // 3
RETURN_LIMIT = 5.0  # seconds after the standby answers again
DATABASE = "app_faults_replica"
METRICS_TOKEN = secrets.token_urlsafe(48)


class ServedBy(threading.Thread):
    """Scrapes /metrics every 100 ms: when did the primary and the standby each last serve a read."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.done = url, threading.Event()
        self.timeline: list[tuple[float, float, float]] = []  # (time, standby reads, primary reads)

    def run(self) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        while not self.done.is_set():
            try:
                text = requests.get(self.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                                    timeout=2).text
            except requests.RequestException:
                continue
            counts = {"standby": 0.0, "primary": 0.0}
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "app_db_reads_total":
                        counts["standby" if sample.labels["server"] == "replica1" else "primary"] += sample.value
            self.timeline.append((time.time(), counts["standby"], counts["primary"]))
            self.done.wait(0.1)

    def first_increase(self, which: int, after: float) -> float | None:
        earlier = [row for row in self.timeline if row[0] <= after]
        base = earlier[-1][which] if earlier else 0.0
        return next((row[0] for row in self.timeline if row[0] > after and row[which] > base), None)


def main() -> None:
    reason = pg.missing()
    if reason:
        print(f"SKIPPED: no replication here: {reason}")
        return
    cluster = pg.start_replication()
    try:
        run(cluster)
    finally:
        cluster.stop()


def run(cluster: pg.Replication) -> None:
    import subprocess

    from scripts.faults.common import BIN, ROOT, app_env

    cluster.primary.query(f"CREATE DATABASE {DATABASE}")
    primary_url, standby_url = cluster.primary.url(DATABASE), cluster.standby.url(DATABASE)
    redis_url = os.environ.get("FAULTS_REDIS_URL", "redis://127.0.0.1:6379/0")
    extra = {"DATABASE_REPLICA_URLS": standby_url, "REDIS_URL": redis_url, "METRICS_TOKEN": METRICS_TOKEN,
             "RATELIMIT_KEY_PREFIX": f"faults-replica-{os.getpid()}", "RATELIMIT_ENABLED": "0"}
    subprocess.run([str(BIN / "flask"), "db", "upgrade"], cwd=ROOT, check=True, capture_output=True,
                   env={**app_env(primary_url, **extra), "FLASK_APP": "wsgi.py"})
    with gunicorn(primary_url, workers=3, **extra) as server:
        headers = sign_up(server.url, "replica-stop@example.com")
        ids = [requests.post(server.url + "/api/posts", json={"title": f"Post {n}", "body": "b"},
                             headers=headers, timeout=10).json()["id"] for n in range(5)]
        cluster.wait_for_standby()
        paths = ["/api/posts?limit=5", *(f"/api/posts/{post_id}" for post_id in ids)]
        load = Background(url=server.url, seconds=LOAD_SECONDS, connections=6, paths=paths, timeout="10s")
        served = ServedBy(server.url)
        load.start()
        served.start()

        time.sleep(STOP_AT)
        stopped_at = time.time()
        cluster.standby.stop("fast")
        time.sleep(DOWN_FOR)
        cluster.standby.start()
        answers_at = time.time()

        result = load.wait()
        served.done.set()
        served.join()
        log = server.output()

    to_primary = served.first_increase(2, stopped_at)
    back = served.first_increase(1, answers_at)
    returned = None if back is None else back - answers_at
    down = [row for row in served.timeline if stopped_at + 1 < row[0] < answers_at]
    standby_during_outage = down[-1][1] - down[0][1] if len(down) > 1 else 0.0
    server_errors = sum(n for status, n in result.statuses.items() if status >= 500)
    table(
        "replica-stop", "5. Hot standby stopped and started again under load",
        ["requests (wrk)", "errors by status (wrk)", "p50 / p99 (wrk)", "reads on the primary after the stop",
         "standby reads while it was down", "reads back on the standby after it answered"],
        [[result.requests, status_summary(result.statuses, result.socket_errors),
          f"{result.p50_ms:.1f} / {result.p99_ms:.1f} ms",
          "none" if to_primary is None else f"after {max(0.0, to_primary - stopped_at):.1f} s",
          f"{standby_during_outage:.0f}", "never" if returned is None else f"after {returned:.1f} s"]],
        [f"`pg_ctl stop -m fast` on the standby at {STOP_AT} s of {LOAD_SECONDS} s of wrk load (6 connections, "
         f"3 sync workers, anonymous reads of posts), `pg_ctl start` {DOWN_FOR} s later.",
         "Which server served is read from /metrics (`app_db_reads_total`), scraped every 100 ms; times are "
         "to the first scrape that shows it (so up to 0.1 s late)."],
    )
    expect(server_errors == 0 and not result.socket_errors, f"clients saw errors: {dict(result.statuses)}")
    expect(to_primary is not None, "reads never moved to the primary")
    expect(standby_during_outage == 0, "the standby was counted as serving while it was down")
    expect(returned is not None and returned <= RETURN_LIMIT, f"reads did not return to the standby: {returned}")
    expect("Traceback" not in log, "a traceback reached the gunicorn log")


if __name__ == "__main__":
    run_scenario(main, "standby stop")
