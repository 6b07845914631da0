"""Fault 1: PostgreSQL restarts in the middle of the load.

Expected: while it is down, requests fail fast with 503 problem JSON (no hangs,
no tracebacks); within seconds of it answering again every request succeeds,
with the same gunicorn workers (the pool's pre-ping replaces dead connections).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter

import requests

from scripts.faults.common import (
    Background,
    Probe,
    expect,
    gunicorn,
    percentile,
    postgres_version,
    run_scenario,
    sign_up,
    status_summary,
    table,
    throwaway_database,
    wait_for_postgres,
)

LOAD_SECONDS = int(os.environ.get("FAULTS_SECONDS", 16))
RESTART_AT = LOAD_SECONDS // 3
RECOVERY_LIMIT = 5.0  # seconds after PostgreSQL answers
FAST = 3.5  # a failing request must not take longer (connect timeout 3 s)


def main() -> None:
    with throwaway_database("pg") as database_url, gunicorn(database_url, workers=3) as server:
        headers = sign_up(server.url, "pg-restart@example.com")
        for n in range(5):
            requests.post(server.url + "/api/posts", json={"title": f"Post {n}", "body": "b"},
                          headers=headers, timeout=10).raise_for_status()
        workers_before = server.worker_pids()
        paths = ["/api/posts?limit=5", "/api/users/me", "/health/ready"]
        load = Background(url=server.url, seconds=LOAD_SECONDS, connections=6, paths=paths,
                          headers=headers, timeout="10s")
        probe = Probe(server.url + "/api/users/me", headers=headers)
        load.start()
        probe.start()

        time.sleep(RESTART_AT)
        restart_started = time.time()
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main", "restart"],
                       check=True, capture_output=True)
        wait_for_postgres(30)
        postgres_back = time.time()

        result = load.wait()
        samples = probe.stop()
        workers_after = server.worker_pids()
        log = server.output()

    failures = [s for s in samples if s.status != 200]
    first_failure = min((s.at for s in failures), default=postgres_back)
    during = [s for s in samples if restart_started <= s.at <= postgres_back + RECOVERY_LIMIT]
    last_failure = max((s.at for s in failures), default=postgres_back)
    recovery = max(0.0, last_failure - postgres_back)
    slowest_failure = max((s.seconds for s in failures), default=0.0)
    after = [s for s in samples if s.at > last_failure]
    wrk_after = [counts for second, counts in result.per_second if second > last_failure + 1]

    table(
        "pg-restart", "1. PostgreSQL restart under load",
        ["requests (wrk)", "errors by status (wrk)", "p50 / p99 (wrk)", "probe: non-200 during outage",
         "slowest failed probe", "restart took", "clients saw errors for", "recovery after PostgreSQL answers",
         "workers replaced"],
        [[result.requests, status_summary(result.statuses, result.socket_errors),
          f"{result.p50_ms:.1f} / {result.p99_ms:.1f} ms", status_summary_samples(failures),
          f"{slowest_failure * 1000:.0f} ms", f"{postgres_back - restart_started:.1f} s",
          f"{max(0.0, last_failure - first_failure):.1f} s",
          f"{recovery:.1f} s", "none" if workers_before == workers_after else "yes"]],
        [f"`pg_ctlcluster {postgres_version()} main restart` at {RESTART_AT} s of {LOAD_SECONDS} s of "
         "wrk load (6 connections, 3 sync workers) on /api/posts, /api/users/me, /health/ready; "
         "a probe requests /api/users/me every 50 ms.",
         f"Probe p99 over the whole run: {percentile([s.seconds for s in samples], 99) * 1000:.0f} ms."],
    )

    expect(all(s.status in (200, 503) for s in samples),
           f"unexpected statuses: {status_summary_samples(failures)}")
    expect(all(s.problem_json for s in failures), "a 503 was not problem JSON")
    expect(set(result.statuses) <= {200, 503}, f"wrk saw {dict(result.statuses)}")
    expect(slowest_failure <= FAST, f"a failing request took {slowest_failure:.1f} s")
    expect(recovery <= RECOVERY_LIMIT, f"recovery took {recovery:.1f} s")
    expect(len(after) > 10 and all(s.status == 200 for s in after), "requests did not all succeed again")
    expect(all(set(counts) == {200} for counts in wrk_after), "wrk still saw errors after recovery")
    expect(workers_before == workers_after, "gunicorn workers were replaced")
    expect("Traceback" not in log, "a traceback reached the gunicorn log")
    expect(bool(during), "the probe saw nothing during the restart")


def status_summary_samples(samples) -> str:
    return status_summary(Counter(s.status for s in samples)) if samples else "none"


if __name__ == "__main__":
    run_scenario(main, "PostgreSQL restart")
