"""Fault 2: a gunicorn worker is killed with SIGKILL in the middle of the load.

Expected: the master starts a replacement at once, and the only failed requests
are the ones that worker had in flight (a sync worker serves one at a time).
"""

from __future__ import annotations

import os
import signal
import time

from scripts.faults.common import (
    Background,
    expect,
    gunicorn,
    run_scenario,
    sign_up,
    status_summary,
    table,
    throwaway_database,
    wait_until,
)

LOAD_SECONDS = int(os.environ.get("FAULTS_SECONDS", 12))
KILL_AT = LOAD_SECONDS // 3
WORKERS = 3
IN_FLIGHT_PER_SYNC_WORKER = 1


def main() -> None:
    with throwaway_database("kill") as database_url, gunicorn(database_url, workers=WORKERS) as server:
        headers = sign_up(server.url, "kill-worker@example.com")
        load = Background(url=server.url, seconds=LOAD_SECONDS, connections=6, headers=headers,
                          paths=["/api/posts?limit=5", "/api/users/me"])
        load.start()
        time.sleep(KILL_AT)
        before = server.worker_pids()
        victim = before[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(server.worker_pids()) == WORKERS and victim not in server.worker_pids(), 15,
                   "the master did not replace the worker")
        replaced_after = time.monotonic() - killed_at
        result = load.wait()
        after = server.worker_pids()
        master_alive = server.process.poll() is None

    table(
        "kill-worker", "2. SIGKILL of a gunicorn worker under load",
        ["requests", "errors by status / socket", "errors allowed (in flight)", "p50 / p99",
         "replacement worker up after", "workers before → after"],
        [[result.requests, status_summary(result.statuses, result.socket_errors), IN_FLIGHT_PER_SYNC_WORKER,
          f"{result.p50_ms:.1f} / {result.p99_ms:.1f} ms", f"{replaced_after:.1f} s",
          f"{len(before)} → {len(after)}"]],
        [f"wrk, 6 connections, {LOAD_SECONDS} s on /api/posts and /api/users/me; one of {WORKERS} sync "
         f"workers is sent SIGKILL at {KILL_AT} s."],
    )
    expect(master_alive, "the gunicorn master died")
    expect(victim not in after and len(after) == WORKERS, "the worker was not replaced")
    expect(result.errors <= IN_FLIGHT_PER_SYNC_WORKER,
           f"{result.errors} errors, more than the killed worker had in flight")
    expect(all(status < 500 for status in result.statuses), f"server errors: {dict(result.statuses)}")


if __name__ == "__main__":
    run_scenario(main, "worker SIGKILL")
