"""Behaviour that needs a real server: several gunicorn workers, real concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.helpers import PASSWORD


def _register(base: str, email: str) -> requests.Response:
    return requests.post(f"{base}/api/users", json={"email": email, "name": "Racer", "password": PASSWORD},
                         timeout=30)


def _login(base: str, email: str) -> dict:
    response = requests.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD},
                             timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_concurrent_registrations_of_one_email_create_exactly_one_account(live_server):
    emails = ["Race@Example.com" if i % 2 else "race@example.com" for i in range(20)]
    barrier = threading.Barrier(len(emails))

    def attempt(email: str) -> int:
        barrier.wait()
        return _register(live_server.url, email).status_code

    with ThreadPoolExecutor(len(emails)) as pool:
        statuses = list(pool.map(attempt, emails))

    assert statuses.count(201) == 1
    assert statuses.count(409) == len(emails) - 1


def test_token_revoked_in_one_worker_is_refused_by_every_worker(live_server):
    assert _register(live_server.url, "revoker@example.com").status_code == 201
    token = _login(live_server.url, "revoker@example.com")["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}

    assert requests.get(f"{live_server.url}/api/users/me", headers=headers, timeout=30).status_code == 200
    assert requests.post(f"{live_server.url}/api/auth/logout", headers=headers, timeout=30).status_code == 204

    # Many fresh connections in parallel land on all of the server's workers.
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(
            lambda _: requests.get(f"{live_server.url}/api/users/me", headers=headers, timeout=30).status_code,
            range(40),
        ))
    assert statuses == [401] * 40


def test_keyset_walk_visits_every_post_once_while_new_posts_arrive(live_server):
    assert _register(live_server.url, "writer@example.com").status_code == 201
    token = _login(live_server.url, "writer@example.com")["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    existing = []
    for i in range(60):
        response = requests.post(f"{live_server.url}/api/posts", json={"title": f"Old {i}", "body": "b"},
                                 headers=auth, timeout=30)
        assert response.status_code == 201
        existing.append(response.json()["id"])

    stop = threading.Event()
    created_during_walk: list[int] = []

    def keep_writing() -> None:
        while not stop.is_set():
            response = requests.post(f"{live_server.url}/api/posts", json={"title": "New", "body": "b"},
                                     headers=auth, timeout=30)
            created_during_walk.append(response.json()["id"])

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        seen, url = [], f"{live_server.url}/api/posts?limit=7"
        while url:
            response = requests.get(url, timeout=30)
            assert response.status_code == 200
            seen.extend(post["id"] for post in response.json())
            url = response.links.get("next", {}).get("url")
    finally:
        stop.set()
        writer.join()

    assert created_during_walk, "the writer must have created posts during the walk"
    assert len(seen) == len(set(seen)), "no post is visited twice"
    old_seen = [post_id for post_id in seen if post_id in set(existing)]
    assert old_seen == sorted(existing, reverse=True), "every older post once, newest first"

