"""The mail benchmark (issue 28): password resets against a slow mail server, under list load.

    python bench/mail.py [--database app_bench_mail] [--rounds 3] [--duration 15]

A fresh PostgreSQL database (its name must contain "bench"), seeded with `flask seed`; the app
under gunicorn with the production config; two `flask worker` processes; an SMTP server
(aiosmtpd) that takes 5 s to answer each message. Each round runs `GET /api/posts` under wrk
twice, alternated: alone, then with 20 concurrent password resets for existing accounts fired
a few seconds in. It reports each reset's answer time (from the client), the list's p99 with and
without the resets, and how long the two workers took to hand all 20 messages to the server.

Targets: every reset answered in under 100 ms at p99; the list's p99 within 1.2x of the run
without resets; all 20 messages delivered within 60 s. Prints a Markdown table for
bench/results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import requests
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402
from scripts.live_server import free_port  # noqa: E402

RESETS = 20
SMTP_SECONDS = 5.0
WORKERS = 2
RESETS_AFTER = 3  # seconds into the list run
DELIVERY_LIMIT = 120  # seconds to wait for the 20 messages before giving up on a round
LIST = "/api/posts?limit=20"


class SlowServer:
    """Takes every message, SMTP_SECONDS after its data arrives; when each was taken.
    Plain attributes only (aiosmtpd reads them all)."""

    def __init__(self) -> None:
        self.taken: list[float] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        await asyncio.sleep(SMTP_SECONDS)
        with self.lock:
            self.taken.append(time.monotonic())
        return "250 Message accepted"


def server_times(log_text: str) -> list[float]:
    """The app's own time for each reset (its request log line), queueing before it excluded."""
    return [float(m) for m in re.findall(r"POST /api/auth/password-reset 202 ([0-9.]+)ms", log_text)]


def seeded_emails(database_url: str, count: int) -> list[str]:
    connection = psycopg2.connect(database_url)
    with connection.cursor() as cursor:
        cursor.execute("SELECT email FROM users ORDER BY id LIMIT %s", (count,))
        emails = [row[0] for row in cursor.fetchall()]
    connection.close()
    return emails


def reset(url: str, email: str) -> float:
    """One password reset on a connection of its own; milliseconds to the answer."""
    started = time.perf_counter()
    response = requests.post(f"{url}/api/auth/password-reset", json={"email": email}, timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 202:
        raise RuntimeError(f"reset answered {response.status_code}: {response.text[:200]}")
    return elapsed


def percentile(values: list[float], share: float) -> float:
    """Nearest rank: the smallest value at or above `share` of them."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(share * len(ordered))) - 1)]


def resets_under_load(app: run.Server, smtp: SlowServer, emails: list[str], duration: int,
                      connections: int) -> tuple[dict, list[float], float]:
    """A list run with 20 concurrent resets fired RESETS_AFTER seconds in: the wrk summary,
    each reset's time and the seconds from the first reset to the last message taken."""
    box: dict = {}
    runner = threading.Thread(target=lambda: box.update(run.wrk(app, app.url + LIST, duration, connections)))
    taken_before = len(smtp.taken)
    runner.start()
    time.sleep(RESETS_AFTER)
    fired = time.monotonic()
    with ThreadPoolExecutor(RESETS) as pool:
        times = list(pool.map(lambda email: reset(app.url, email), emails))
    runner.join()
    deadline = fired + DELIVERY_LIMIT
    while len(smtp.taken) < taken_before + RESETS and time.monotonic() < deadline:
        time.sleep(0.2)
    delivered = smtp.taken[taken_before:]
    seconds = (max(delivered) - fired) if len(delivered) >= RESETS else float("inf")
    return box, times, seconds


def resets_alone(app: run.Server, smtp: SlowServer, emails: list[str]) -> tuple[list[float], float]:
    """The same 20 concurrent resets with no list load: what a reset costs without the queue
    that a saturated server puts before it. Waits for their delivery, so rounds start clean."""
    taken_before = len(smtp.taken)
    fired = time.monotonic()
    with ThreadPoolExecutor(RESETS) as pool:
        times = list(pool.map(lambda email: reset(app.url, email), emails))
    deadline = fired + DELIVERY_LIMIT
    while len(smtp.taken) < taken_before + RESETS and time.monotonic() < deadline:
        time.sleep(0.2)
    delivered = smtp.taken[taken_before:]
    return times, (max(delivered) - fired) if len(delivered) >= RESETS else float("inf")


def start_workers(env: dict[str, str]) -> list[subprocess.Popen]:
    processes = []
    for n in range(WORKERS):
        log_file = (run.OUT / f"mail-worker-{n + 1}.log").open("w")
        processes.append(subprocess.Popen([sys.executable, "-m", "flask", "worker"], cwd=ROOT, env=env,
                                          stdout=log_file, stderr=subprocess.STDOUT))
    return processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "app_bench_mail"))
    parser.add_argument("--admin-url", default=os.environ.get("BENCH_ADMIN_URL",
                                                              "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15, help="seconds per list run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--posts", type=int, default=100_000)
    options = parser.parse_args()
    database_url = run.bench_database_url(options.admin_url, options.database)
    smtp = SlowServer()
    smtp_port = free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
    env = {**run.app_environment(database_url), "MAIL_PORT": str(smtp_port)}
    load_start = os.getloadavg()

    run.log(f"fresh database {options.database}, {options.posts:,} posts")
    run.recreate_database(options.admin_url, options.database)
    seed_log = run.OUT / "mail-seed.log"
    run.flask(env, "db", "upgrade", log_file=seed_log)
    run.flask(env, "seed", "--users", "1000", "--posts", str(options.posts), "--no-follows", log_file=seed_log)
    emails = seeded_emails(database_url, RESETS)

    controller.start()
    app = run.start_gunicorn("mail", "wsgi:app", env, "/health")
    workers = start_workers(env)
    alone: list[dict] = []
    loaded: list[dict] = []
    reset_times: list[float] = []
    idle_times: list[float] = []
    idle_delivery = float("inf")
    deliveries: list[float] = []
    try:
        run.wrk(app, app.url + LIST, 2, options.connections)  # warm-up
        idle_times, idle_delivery = resets_alone(app, smtp, emails)
        run.log(f"20 resets without list load: p99 {percentile(idle_times, 0.99):.1f} ms; "
                f"delivered in {idle_delivery:.1f} s")
        for round_number in range(1, options.rounds + 1):
            alone.append(run.wrk(app, app.url + LIST, options.duration, options.connections))
            summary, times, seconds = resets_under_load(app, smtp, emails, options.duration, options.connections)
            loaded.append(summary)
            reset_times += times
            deliveries.append(seconds)
            run.log(f"round {round_number}: list p99 {alone[-1]['p99_us'] / 1000:.1f} ms alone, "
                f"{summary['p99_us'] / 1000:.1f} ms with resets; resets p99 {percentile(times, 0.99):.1f} ms, "
                f"max {max(times):.1f} ms; 20 messages delivered in {seconds:.1f} s")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        in_app = server_times(app.output())
        app.stop()
        controller.stop()

    p99_alone = statistics.median(r["p99_us"] / 1000 for r in alone)
    p99_loaded = statistics.median(r["p99_us"] / 1000 for r in loaded)
    errors = sum(r["errors_status"] + r["errors_socket"] for r in alone + loaded)
    reset_p99 = percentile(reset_times, 0.99)
    ratio = p99_loaded / p99_alone
    slowest_delivery = max(deliveries)
    load_end = os.getloadavg()
    loads = " ".join(f"{x:.2f}" for x in load_start) + " at the start, " + " ".join(f"{x:.2f}" for x in load_end)
    loads += " at the end"

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print()
    print(f"Mail benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {options.rounds} rounds, "
          f"list runs of {options.duration} s with {options.connections} connections, {WORKERS} workers, "
          f"an SMTP server taking {SMTP_SECONDS:.0f} s per message; load average {loads}.")
    print()
    print("| measure | figure | target |")
    print("|---|---|---|")
    print(f"| password reset answer, p50 / p99 / max over {len(reset_times)} | "
          f"{statistics.median(reset_times):.1f} / {reset_p99:.1f} / {max(reset_times):.1f} ms | "
          f"p99 < 100 ms: {mark(reset_p99 < 100)} |")
    if in_app:
        print(f"| the app's own time per reset (its log line, queueing excluded), p50 / p99 / max over "
              f"{len(in_app)} | {statistics.median(in_app):.1f} / {percentile(in_app, 0.99):.1f} / "
              f"{max(in_app):.1f} ms | — |")
    if idle_times:
        print(f"| the same 20 concurrent resets with no list load, p50 / p99 / max | "
              f"{statistics.median(idle_times):.1f} / {percentile(idle_times, 0.99):.1f} / {max(idle_times):.1f} ms; "
              f"delivered in {idle_delivery:.1f} s | — |")
    print(f"| `GET {LIST}` p99 alone / with the resets (median of rounds) | {p99_alone:.1f} / {p99_loaded:.1f} ms "
          f"({ratio:.2f}x) | within 1.2x: {mark(ratio <= 1.2)} |")
    print(f"| `GET {LIST}` throughput alone / with the resets (median) | "
          f"{statistics.median(r['rps'] for r in alone):.0f} / {statistics.median(r['rps'] for r in loaded):.0f} "
          f"req/s, {errors} errors | — |")
    print(f"| 20 messages handed to the server, first reset to last message, per round | "
          f"{', '.join(f'{s:.1f}' for s in deliveries)} s | under 60 s: {mark(slowest_delivery < 60)} |")


if __name__ == "__main__":
    main()
