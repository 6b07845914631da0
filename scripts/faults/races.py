"""Fault 3: 50 concurrent registrations of one email, 50 concurrent edits of one post.

Expected: exactly one account (one 201, the rest 409), no 500s; every edit is
a 200, or a 412 when another edit committed between its read and its write (the
version check: no edit silently overwrites one it never saw), at least one is a
200, and the post ends as exactly one of the submitted versions (title and body
from the same request, never a mix).

The requests are released together from a barrier by 50 threads, each with
its own HTTP connection, against gunicorn on PostgreSQL.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from scripts.faults.common import (
    PASSWORD,
    expect,
    gunicorn,
    percentile,
    psql_count,
    run_scenario,
    sign_up,
    table,
    throwaway_database,
)

CONCURRENCY = int(os.environ.get("FAULTS_RACERS", 50))


def race(call, n: int) -> list[tuple[int, float]]:
    """Run `call(i)` in n threads released at once; (status, seconds) per call."""
    barrier = threading.Barrier(n)

    def one(i: int) -> tuple[int, float]:
        session = requests.Session()
        barrier.wait()
        started = time.monotonic()
        try:
            status = call(session, i).status_code
        except requests.RequestException:
            status = 0
        return status, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def main() -> None:
    with throwaway_database("races") as database_url, gunicorn(database_url, workers=4) as server:
        email = "race@example.com"
        registrations = race(lambda s, i: s.post(server.url + "/api/users", timeout=30, json={
            "email": email if i % 2 else email.upper(), "name": f"Racer {i}", "password": PASSWORD}),
            CONCURRENCY)
        accounts = psql_count(database_url, "SELECT count(*) FROM users WHERE email = 'race@example.com'")

        headers = sign_up(server.url, "author@example.com")
        created = requests.post(server.url + "/api/posts", json={"title": "original", "body": "original"},
                                headers=headers, timeout=10)
        post_url = server.url + created.headers["Location"]
        submitted = {(f"title {i}", f"body {i}") for i in range(CONCURRENCY)}
        edits = race(lambda s, i: s.patch(post_url, headers=headers, timeout=30,
                                          json={"title": f"title {i}", "body": f"body {i}"}), CONCURRENCY)
        final = requests.get(post_url, timeout=10).json()

    reg_statuses = Counter(status for status, _ in registrations)
    edit_statuses = Counter(status for status, _ in edits)
    rows = [
        [f"{CONCURRENCY} registrations, one email", CONCURRENCY, every_status(reg_statuses),
         *latencies(registrations), f"{accounts} account(s)"],
        [f"{CONCURRENCY} edits of one post", CONCURRENCY, every_status(edit_statuses), *latencies(edits),
         f"ends as `{final['title']}` / `{final['body']}`"],
    ]
    table("races", "3. Concurrent registrations and edits",
          ["race", "requests", "statuses", "p50 / p99", "outcome"], rows,
          ["Half the registrations use the upper-cased email: still one account.",
           "4 sync workers; each request has its own connection, all released from one barrier."])

    expect(accounts == 1, f"{accounts} accounts for one email")
    expect(reg_statuses[201] == 1 and reg_statuses[409] == CONCURRENCY - 1,
           f"registrations: {dict(reg_statuses)}")
    expect(set(edit_statuses) <= {200, 412} and edit_statuses[200] >= 1, f"edits: {dict(edit_statuses)}")
    expect((final["title"], final["body"]) in submitted, f"the post ended as {final}")


def every_status(statuses: Counter) -> str:
    return ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))


def latencies(results: list[tuple[int, float]]) -> list[str]:
    seconds = [s for _, s in results]
    return [f"{percentile(seconds, 50) * 1000:.0f} / {percentile(seconds, 99) * 1000:.0f} ms"]


if __name__ == "__main__":
    run_scenario(main, "races")
