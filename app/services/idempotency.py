"""Idempotency keys: a create retried with the same key runs once.

The stored response is written in the transaction of the create itself, so a key
row exists exactly when the create committed: no create can be lost behind a stored
answer, and no answer is replayed for a create that rolled back. While the first
request runs, PostgreSQL's transaction-scoped advisory lock on the key turns a
concurrent repeat into a `RequestInProgress` at once, and it is released by the same
commit that makes the row visible. SQLite has one writer at a time: a repeat waits
for the first to commit, then finds its row (a race lost at commit is a 409 too).

A key's row keeps a fingerprint of the request body for 24 hours, and a registration's
body holds a password: see `fingerprint` for why a copy of the table gives nothing to
test a password guess against.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, delete, func, select

from app.errors import DomainError, RequestInProgress, ValidationFailed
from app.extensions import db
from app.models import IdempotencyKey, utcnow

_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}\Z")
PRUNE_IN_PASSING = 50  # expired rows each keyed request deletes on its way
RETRY_AFTER = "1"
# Fields left out of the fingerprint, at any depth: password, current_password, device_token ...
SECRET_FIELD = re.compile(r"password|secret|token", re.IGNORECASE)
FINGERPRINT_PURPOSE = b"idempotency-key-fingerprint"  # this key signs nothing else


class InvalidKey(DomainError):
    default_detail = "Idempotency-Key must be 1 to 255 printable ASCII characters."


class KeyReused(ValidationFailed):
    default_detail = ("This Idempotency-Key was already used for a request with a different body; "
                      "use a new key for a new request.")


@dataclass(frozen=True)
class KeyedRequest:
    """Who asked (user or client address), where, with which key and which body."""

    scope: str
    method: str
    path: str
    key: str
    fingerprint: str

    @classmethod
    def of(cls, scope: str, method: str, path: str, key: str, body: bytes) -> KeyedRequest:
        if not _VALID_KEY.match(key):
            raise InvalidKey()
        return cls(scope, method, path, key, fingerprint(body))


def fingerprint(body: bytes) -> str:
    """What tells a replay (the same body) from a misuse of its key (another body).

    HMAC-SHA256, under a key derived from `SECRET_KEY` for this purpose alone, of the JSON
    body with every field named like a secret (`SECRET_FIELD`) left out, keys sorted. A
    reader of the database, a backup or a replica has no password guess to test against
    the stored value: it does not depend on the password, and without the server's key
    nothing about the body can be checked against it.

    Leaving secrets out means a retry under the same key whose body differs only in a
    secret (another password) is the same request: it gets the stored answer, as a retry
    should, and changes nothing. Whitespace and key order do not matter either; any other
    difference is still `KeyReused`. A body that is not JSON (the view refuses it, and
    nothing is stored) is keyed as it is.

    Changing `SECRET_KEY`, or deploying this over stored SHA-256 fingerprints, turns a
    retry of a key stored before into a 422 (`KeyReused`): keys live `IDEMPOTENCY_TTL_HOURS`.
    """
    secret = hmac.new(current_app.config["SECRET_KEY"].encode(), FINGERPRINT_PURPOSE, hashlib.sha256).digest()
    return hmac.new(secret, _without_secrets(body), hashlib.sha256).hexdigest()


def _without_secrets(body: bytes) -> bytes:
    try:
        document = json.loads(body)
        return json.dumps(_redacted(document), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # not JSON (or absurdly deep): the view refuses it
        return body


def _redacted(value: object) -> object:
    if isinstance(value, dict):
        return {name: _redacted(item) for name, item in value.items() if not SECRET_FIELD.search(name)}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _same_request(request: KeyedRequest) -> ColumnElement[bool]:
    return (IdempotencyKey.scope == request.scope) & (IdempotencyKey.method == request.method) & (
        IdempotencyKey.path == request.path) & (IdempotencyKey.key == request.key)


def _lock_id(request: KeyedRequest) -> int:
    digest = hashlib.blake2b("\0".join((request.scope, request.method, request.path, request.key)).encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def claim(request: KeyedRequest) -> StoredResponse | None:
    """Take the key for this transaction: the stored response of an earlier run, or None
    (go ahead, then `record`). A run still in progress is a RequestInProgress; the key
    used with another body is KeyReused."""
    session = db.session
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql" and not session.scalar(
            select(func.pg_try_advisory_xact_lock(_lock_id(request)))):
        raise RequestInProgress(headers={"Retry-After": RETRY_AFTER})
    # On SQLite this first write also takes the database's write lock, serialising repeats.
    session.execute(delete(IdempotencyKey).where(_same_request(request), IdempotencyKey.expires_at <= now))
    prune(now, limit=PRUNE_IN_PASSING)
    row = session.scalar(select(IdempotencyKey).where(_same_request(request)))
    if row is None:
        return None
    if row.fingerprint != request.fingerprint:
        raise KeyReused()
    return StoredResponse(row.status, dict(row.headers), row.body)


def record(request: KeyedRequest, response: StoredResponse, ttl: timedelta) -> None:
    """Store the response in the session's transaction, to commit with the create."""
    db.session.add(IdempotencyKey(
        scope=request.scope, method=request.method, path=request.path, key=request.key,
        fingerprint=request.fingerprint, status=response.status, headers=response.headers,
        body=response.body, expires_at=utcnow() + ttl,
    ))


def prune(now: datetime | None = None, limit: int | None = None) -> int:
    """Delete expired keys (at most `limit`); rows other transactions hold are skipped."""
    expired = select(IdempotencyKey.id).where(IdempotencyKey.expires_at <= (now or utcnow()))
    if limit is not None:
        expired = expired.limit(limit).with_for_update(skip_locked=True)
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(expired)))
    return result.rowcount or 0
