"""Idempotency keys: a create retried with the same key runs once.

The stored response is written in the transaction of the create itself, so a key
row exists exactly when the create committed: no create can be lost behind a stored
answer, and no answer is replayed for a create that rolled back. While the first
request runs, PostgreSQL's transaction-scoped advisory lock on the key turns a
concurrent repeat into a `RequestInProgress` at once, and it is released by the same
commit that makes the row visible. SQLite has one writer at a time: a repeat waits
for the first to commit, then finds its row (a race lost at commit is a 409 too).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select

from app.errors import DomainError, RequestInProgress, ValidationFailed
from app.extensions import db
from app.models import IdempotencyKey, utcnow

_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}\Z")
PRUNE_IN_PASSING = 50  # expired rows each keyed request deletes on its way
RETRY_AFTER = "1"


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
        return cls(scope, method, path, key, hashlib.sha256(body).hexdigest())


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
