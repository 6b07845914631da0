"""A threaded gunicorn worker (`-k gthread`) shares its pools between its threads: more threads
than pooled connections wait their turn for a connection, they never fail (issue 27)."""

from __future__ import annotations

import threading
import time

import requests

from tests.helpers import start_gunicorn

THREADS, CONNECTIONS, SECONDS = 16, 32, 10


def _hammer(url: str, headers: dict[str, str], seconds: float) -> tuple[int, list[str]]:
    """CONNECTIONS clients, each with its own connection, asking `url` for `seconds`."""
    done, problems = [0], []
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                try:
                    status = session.get(url, headers=headers, timeout=30).status_code
                except requests.RequestException as error:
                    status, reason = 0, repr(error)
                else:
                    reason = f"HTTP {status}"
                with lock:
                    done[0] += 1
                    if status != 200:
                        problems.append(reason)

    threads = [threading.Thread(target=client) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0], problems


def test_a_threaded_worker_with_more_threads_than_pooled_connections_answers_every_request(
        database_url, user, make_post):
    make_post(user, "Threads")
    server = start_gunicorn(database_url, workers=1, env={
        "GUNICORN_CMD_ARGS": f"--worker-class gthread --threads {THREADS}",
        "DB_POOL_SIZE": "5", "DB_MAX_OVERFLOW": "5",  # the defaults: fewer connections than threads
    })
    try:
        for path, headers in (("/api/posts", {}), ("/api/users/me", user.headers)):
            done, problems = _hammer(server.url + path, headers, SECONDS)
            assert done > CONNECTIONS and problems == [], (path, done, problems[:5])
    finally:
        server.stop()
