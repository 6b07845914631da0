"""Fault 6: a rolling restart under load: two app instances behind nginx, each stopped with SIGTERM
and started again in turn, the way docs/operations.md's runbook does it:

1. take the instance out of rotation: render nginx's configuration without it
   (deploy/render-nginx.sh, NGINX_UPSTREAMS) and reload nginx (SIGHUP: its old workers finish
   their requests, new ones no longer send any there);
2. SIGTERM the instance: gunicorn finishes the requests in flight and exits;
3. start it again and wait until /health/ready answers 200;
4. put it back in rotation (render with both, reload).

Expected: 0 failed requests, reads (wrk) and writes (a client registering accounts) alike.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack

import requests

from scripts.faults.common import (
    PASSWORD,
    Background,
    expect,
    free_port,
    gunicorn,
    run_scenario,
    sign_up,
    status_summary,
    table,
    throwaway_database,
    wait_until,
)
from scripts.faults.slow_clients import nginx_config, start_nginx

LOAD_SECONDS = int(os.environ.get("FAULTS_ROLLING_SECONDS", 30))
WORKERS = 2
SETTLE = 1.0  # seconds after a reload before the next step: nginx's old workers finish


class Writer(threading.Thread):
    """Registrations one after another through nginx (POST: nginx retries it elsewhere only if
    it was never sent), each outcome counted."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.outcomes: Counter = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        http = requests.Session()
        while not self.stop.is_set():
            try:
                response = http.post(f"{self.url}/api/users", timeout=10, json={
                    "email": f"rolling-{uuid.uuid4().hex[:12]}@example.com", "name": "Rolling",
                    "password": PASSWORD})
                self.outcomes[response.status_code] += 1
            except requests.RequestException as error:
                self.outcomes[type(error).__name__] += 1
                http = requests.Session()


def ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/health/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def main() -> None:
    ports = [free_port(), free_port()]
    rows, checks = [], []
    with throwaway_database("rolling") as database_url, ExitStack() as stack:
        servers = [stack.enter_context(gunicorn(database_url, workers=WORKERS, port=port, PROXY_FIX_HOPS="1"))
                   for port in ports]
        nginx, nginx_port, prefix = start_nginx(ports)
        stack.callback(shutil.rmtree, prefix, ignore_errors=True)
        stack.callback(nginx.wait, 10)
        stack.callback(nginx.terminate)
        front = f"http://127.0.0.1:{nginx_port}"
        headers = sign_up(front, "rolling-restart@example.com")

        def rotate(in_rotation: list[int]) -> None:
            nginx_config(in_rotation, nginx_port, prefix)
            nginx.send_signal(signal.SIGHUP)
            time.sleep(SETTLE)

        def roll(out_of_rotation_first: bool) -> None:
            # A new connection per request: a reload closes nginx's idle keep-alive connections, and a
            # request that crosses that close on the wire is a client's to retry (wrk counts it as an
            # error); what is measured here is the app instances' restart.
            load = Background(url=front, seconds=LOAD_SECONDS, connections=6,
                              headers={**headers, "Connection": "close"}, paths=["/api/posts?limit=5", "/api/users/me"])
            writer = Writer(front)
            load.start()
            writer.start()
            time.sleep(3)
            how = "out of rotation first (runbook)" if out_of_rotation_first else "SIGTERM only (nginx retries)"
            timings = []
            for n, port in enumerate(ports):
                out_at = time.monotonic()
                if out_of_rotation_first:
                    rotate([other for other in ports if other != port])
                term_at = time.monotonic()
                servers[n].stop(timeout=25)  # SIGTERM; gunicorn drains what it has and exits
                exited = time.monotonic() - term_at
                started_at = time.monotonic()
                servers[n] = stack.enter_context(gunicorn(database_url, workers=WORKERS, port=port,
                                                          PROXY_FIX_HOPS="1"))
                wait_until(lambda port=port: ready(f"http://127.0.0.1:{port}"), 30, "the instance did not get ready")
                ready_after = time.monotonic() - started_at
                if out_of_rotation_first:
                    rotate(ports)
                timings.append((exited, ready_after, time.monotonic() - out_at))
                time.sleep(2)
            result = load.wait()
            writer.stop.set()
            writer.join(timeout=15)
            writes_failed = sum(count for outcome, count in writer.outcomes.items()
                                if not (isinstance(outcome, int) and outcome < 400))
            for n, (exited, ready_after, out) in enumerate(timings):
                rows.append([how if n == 0 else "", f"instance {n + 1}", f"{exited:.1f} s", f"{ready_after:.1f} s",
                             f"{out:.1f} s",
                             f"{result.requests} / {status_summary(result.statuses, result.socket_errors)}"
                             if n == 0 else "",
                             f"{sum(writer.outcomes.values())} / {writes_failed}" if n == 0 else ""])
            checks.append((out_of_rotation_first, result, writes_failed, sum(writer.outcomes.values())))

        roll(out_of_rotation_first=False)
        roll(out_of_rotation_first=True)

    table("rolling-restart", "6. Rolling restart of two app instances behind nginx, under load",
          ["how", "instance", "SIGTERM → exited", "started → ready", "out of rotation",
           "reads (wrk) / failed", "writes (POST) / failed"], rows,
          [f"Each way runs its own {LOAD_SECONDS} s of load through nginx: wrk, 6 connections (a new one per "
           "request) on /api/posts and /api/users/me, and one client registering accounts (POST, which nginx "
           "passes to the other instance only if it was never sent). Two instances, gunicorn with 2 sync "
           "workers each, restarted one after the other.",
           "Runbook: render nginx's configuration without the instance and reload (SIGHUP), SIGTERM it, start it "
           "again, wait for /health/ready, render with both and reload; 'out of rotation' spans all of it. "
           "SIGTERM only: nginx keeps sending to the stopping instance and retries elsewhere what it can; "
           "'out of rotation' is SIGTERM to ready. In that run nginx's error log shows the stopping instance "
           "resetting connections it had queued (recv() failed, 104), then 'no live upstreams': nginx answers "
           "502 at once until its fail_timeout (10 s by default) passes, hence many fast failures. This way is "
           "shown for comparison; only the runbook must lose nothing."])
    for drained, result, writes_failed, writes in checks:
        expect(result.requests > 100 and writes > 0, "too few requests were made to show anything")
        if drained:
            expect(result.errors == 0, f"failed reads: {status_summary(result.statuses, result.socket_errors)}")
            expect(writes_failed == 0, f"{writes_failed} failed writes")


if __name__ == "__main__":
    run_scenario(main, "rolling restart")
