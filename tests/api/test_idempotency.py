"""Idempotency-Key on POST /api/posts and POST /api/users: a retried create runs once."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select, text, update

from app.extensions import db
from app.models import IdempotencyKey, Post, User, utcnow
from app.services.idempotency import KeyedRequest, _lock_id
from tests.helpers import PASSWORD, assert_problem


def post_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Post))


def create(client, person, key: str, title: str = "Once", body: str = "Only once"):
    return client.post("/api/posts", json={"title": title, "body": body},
                       headers={**person.headers, "Idempotency-Key": key})


def test_a_repeat_with_the_same_key_and_body_replays_the_first_response_byte_for_byte(app, client, user):
    first = create(client, user, "key-1")
    assert first.status_code == 201
    again = create(client, user, "key-1")
    assert again.status_code == 201
    assert again.get_data() == first.get_data()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert post_count(app) == 1


def test_the_same_key_with_another_body_is_422_and_creates_nothing(app, client, user):
    assert create(client, user, "key-2").status_code == 201
    body = assert_problem(create(client, user, "key-2", title="Something else"), 422)
    assert "Idempotency-Key" in body["detail"]
    assert post_count(app) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "new\x7fline"])
def test_an_invalid_key_is_400(app, client, user, key):
    response = client.post("/api/posts", json={"title": "t", "body": "b"},
                           headers={**user.headers, "Idempotency-Key": key})
    assert_problem(response, 400)
    assert post_count(app) == 0


def test_keys_of_the_longest_and_oddest_valid_kinds_work(client, user):
    for key in ("x" * 255, " ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"):
        assert create(client, user, key).status_code == 201


def test_without_a_key_every_post_creates(app, client, user):
    for _ in range(2):
        assert client.post("/api/posts", json={"title": "t", "body": "b"}, headers=user.headers).status_code == 201
    assert post_count(app) == 2


def test_another_users_key_does_nothing_to_mine(app, client, make_user):
    mine, theirs = make_user(), make_user()
    first = create(client, mine, "shared-key")
    other = create(client, theirs, "shared-key")
    assert other.status_code == 201 and other.get_json()["id"] != first.get_json()["id"]
    assert other.get_json()["author"]["id"] == theirs.id
    assert create(client, theirs, "shared-key", title="Different").status_code == 422
    assert create(client, mine, "shared-key").get_data() == first.get_data()
    assert post_count(app) == 2


def test_registration_keys_are_scoped_to_the_client_address(app, client):
    def register(ip: str, email: str):
        return client.post("/api/users", json={"email": email, "name": "Reg User", "password": PASSWORD},
                           headers={"Idempotency-Key": "signup"}, environ_base={"REMOTE_ADDR": ip})

    first = register("192.0.2.1", "first@example.com")
    assert first.status_code == 201
    assert register("192.0.2.1", "first@example.com").get_data() == first.get_data()
    assert register("192.0.2.2", "second@example.com").status_code == 201  # same key, another client
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 2


def test_a_registration_keeps_no_password_derived_fingerprint(app, client, make_app):
    """Issue 26, item 6: the stored fingerprint is keyed by a server secret and leaves the password out."""
    fields = {"email": "keyed@example.com", "name": "Keyed User", "password": PASSWORD}
    raw = json.dumps(fields).encode()
    headers = {"Idempotency-Key": "signup", "Content-Type": "application/json"}
    first = client.post("/api/users", data=raw, headers=headers)
    assert first.status_code == 201
    with app.app_context():
        stored = db.session.scalar(select(IdempotencyKey.fingerprint))
        assert stored != hashlib.sha256(raw).hexdigest()
        # Whatever password is guessed, the value to compare is the same: nothing to test a guess against.
        for guess in ("Password123", "An0therGuess", ""):
            body = json.dumps({**fields, "password": guess}).encode()
            assert KeyedRequest.of("ip:x", "POST", "/api/users", "any", body).fingerprint == stored
    with make_app(SECRET_KEY="another-servers-secret-key-long-enough-987654").app_context():
        assert KeyedRequest.of("ip:x", "POST", "/api/users", "any", raw).fingerprint != stored  # keyed

    # A retry whose body differs only in the password is the same request: the stored answer.
    again = client.post("/api/users", data=json.dumps({**fields, "password": "Diff3rentPassword"}), headers=headers)
    assert again.status_code == 201 and again.get_data() == first.get_data()
    with app.app_context():
        assert list(db.session.scalars(select(IdempotencyKey.fingerprint))) == [stored]
        assert db.session.scalar(select(func.count()).select_from(User)) == 1
    # Any other difference is still another request.
    other = client.post("/api/users", data=json.dumps({**fields, "name": "Someone Else"}), headers=headers)
    assert "Idempotency-Key" in assert_problem(other, 422)["detail"]


def test_fingerprints_leave_out_every_field_named_like_a_secret_at_any_depth(app):
    def fingerprint(document) -> str:
        return KeyedRequest.of("scope", "POST", "/p", "k", json.dumps(document).encode()).fingerprint

    with app.app_context():
        plain = fingerprint({"title": "t", "nested": [{"body": "b"}]})
        assert plain == fingerprint({"nested": [{"body": "b", "device_token": "x"}], "current_password": "p",
                                     "title": "t", "refresh_token": "r", "Client_Secret": "s"})
        assert plain != fingerprint({"title": "t", "nested": [{"body": "B"}]})
        assert fingerprint({"a": 1}) != fingerprint({"a": "1"})


def test_a_refused_create_does_not_use_up_the_key(client, user):
    taken = {"email": user.email, "name": "Again", "password": PASSWORD}
    headers = {"Idempotency-Key": "retry-me"}
    assert_problem(client.post("/api/users", json=taken, headers=headers), 409)
    fresh = client.post("/api/users", json={**taken, "email": "new@example.com"}, headers=headers)
    assert fresh.status_code == 201


def test_an_expired_key_runs_again_and_prune_removes_expired_keys(app, client, user):
    first = create(client, user, "old-key")
    with app.app_context():
        db.session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    again = create(client, user, "old-key")
    assert again.status_code == 201 and again.get_json()["id"] != first.get_json()["id"]
    assert post_count(app) == 2
    with app.app_context():
        db.session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["idempotency", "prune"])
    assert result.exit_code == 0 and "Removed 1 expired" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_keys_are_kept_for_the_configured_hours(make_app, user):
    client = make_app(IDEMPOTENCY_TTL_HOURS=2).test_client()
    assert create(client, user, "ttl").status_code == 201
    with client.application.app_context():
        row = db.session.scalar(select(IdempotencyKey))
        assert timedelta(hours=1, minutes=59) < row.expires_at - row.created_at <= timedelta(hours=2, minutes=1)


def test_expired_keys_are_pruned_in_passing(app, client, user):
    create(client, user, "a")
    with app.app_context():
        db.session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    create(client, user, "b")
    with app.app_context():
        assert list(db.session.scalars(select(IdempotencyKey.key))) == ["b"]


def test_a_repeat_while_the_first_still_runs_is_409_with_retry_after(app, client, user):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite has one writer at a time: a repeat waits for the first, then replays it")
        keyed = KeyedRequest.of(f"user:{user.id}", "POST", "/api/posts", "busy", b"")
        with db.engine.connect() as other:  # the first request, mid-way, holds the key's lock
            other.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _lock_id(keyed)})
            try:
                response = create(client, user, "busy")
            finally:
                other.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _lock_id(keyed)})
    assert_problem(response, 409)
    assert response.headers["Retry-After"] == "1"
    assert post_count(app) == 0
    assert create(client, user, "busy").status_code == 201


# ---- through a real server -----------------------------------------------------


def test_twenty_concurrent_requests_with_one_key_create_one_post(live_server, app, user):
    barrier = threading.Barrier(20)
    answers: list[requests.Response] = []

    def send() -> None:
        barrier.wait()
        answers.append(requests.post(f"{live_server.url}/api/posts", json={"title": "Once", "body": "Only once"},
                                     headers={**user.headers, "Idempotency-Key": "stampede"}, timeout=60))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert post_count(app) == 1
    created = [a for a in answers if a.status_code == 201]
    busy = [a for a in answers if a.status_code == 409]
    assert len(created) + len(busy) == 20, [a.status_code for a in answers]
    assert created and len({a.content for a in created}) == 1
    assert all(a.headers["Retry-After"] == "1" for a in busy)


def test_a_retry_after_a_dropped_response_gets_the_stored_response(live_server, app, user):
    body = b'{"title": "Dropped", "body": "The answer never arrived"}'
    address = urlsplit(live_server.url)
    request = (f"POST /api/posts HTTP/1.1\r\nHost: {address.netloc}\r\n"
               f"Authorization: {user.headers['Authorization']}\r\nIdempotency-Key: lost-answer\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
               ).encode() + body
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
    # The connection is gone before anything was read; the server finishes the create anyway.
    deadline = time.monotonic() + 20
    while post_count(app) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert post_count(app) == 1
    retry = requests.post(f"{live_server.url}/api/posts", data=body, timeout=30,
                          headers={**user.headers, "Idempotency-Key": "lost-answer",
                                   "Content-Type": "application/json"})
    assert retry.status_code in (201, 409)  # 409 only if the first had not committed yet
    while retry.status_code == 409 and time.monotonic() < deadline:
        time.sleep(0.1)
        retry = requests.post(f"{live_server.url}/api/posts", data=body, timeout=30,
                              headers={**user.headers, "Idempotency-Key": "lost-answer",
                                       "Content-Type": "application/json"})
    assert retry.status_code == 201
    assert retry.json()["title"] == "Dropped"
    assert post_count(app) == 1
    with app.app_context():
        assert retry.json()["id"] == db.session.scalar(select(Post.id))
