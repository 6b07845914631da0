"""Sign-in sessions: an API refresh-token family or an admin page session.

A session is alive while its row has no `ended_at` and its `expires_at` lies ahead.
Resolving a token or an admin cookie is one SELECT joining the user and the
session, on the primary; ending sessions is one UPDATE. Both live in the database,
so every worker and host agrees at the next request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Update, and_, bindparam, delete, exists, false, or_, select, update

from app.database import PRIMARY
from app.extensions import db
from app.models import AuthSession, Follow, SessionKind, User, detached_user


class EndReason:
    LOGOUT = "logout"
    LOGOUT_ALL = "logout-all"
    PASSWORD = "password-changed"
    DEACTIVATED = "deactivated"
    ROLE = "role-changed"
    REFRESH_REUSE = "refresh-reuse"
    MAX_LIFETIME = "max-lifetime"
    ADMIN = "ended-by-admin"


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return secrets.token_hex(16)


def start(user: User, kind: SessionKind, lifetime: timedelta, *, refresh_jti: str | None = None) -> AuthSession:
    """Add a session for `user`; the caller commits (with whatever else the sign-in writes)."""
    session = AuthSession(id=new_id(), user_id=user.id, kind=kind.value, refresh_jti=refresh_jti,
                          expires_at=now() + lifetime)
    db.session.add(session)
    return session


# ---- resolving a token or an admin cookie: one statement --------------------------------
# Built once with bound parameters, and read from the primary (`read_from=PRIMARY`), never a
# standby that may lag behind an ended session.

_users, _sessions = User.__table__.c, AuthSession.__table__.c
_ALIVE = and_(
    _sessions.kind == bindparam("kind"), _sessions.ended_at.is_(None),
    _sessions.expires_at > bindparam("at", type_=_sessions.expires_at.type),
).label("alive")
# A token names its user and its session: that user, with whether the session is theirs and
# alive; and for a read of another user (the profile it shows), that user in the same
# statement, each with whether the token's user follows them.
_FOLLOWED = exists().where(Follow.follower_id == bindparam("user_id"), Follow.followed_id == _users.id)
_WITH_SESSION = User.__table__.outerjoin(
    AuthSession.__table__, and_(_sessions.id == bindparam("session_id"), _sessions.user_id == _users.id))
_TOKEN_USER = (
    select(*_users, _ALIVE, false().label("followed")).select_from(_WITH_SESSION)
    .where(_users.id == bindparam("user_id")).execution_options(read_from=PRIMARY)
)
_TOKEN_USERS = (
    select(*_users, _ALIVE, _FOLLOWED.label("followed")).select_from(_WITH_SESSION)
    .where(_users.id.in_([bindparam("user_id"), bindparam("other_id")])).execution_options(read_from=PRIMARY)
)
# An admin cookie names only its session.
_SESSION_USER = (
    select(*_users, _ALIVE, false().label("followed"))
    .join_from(User.__table__, AuthSession.__table__, _sessions.user_id == _users.id)
    .where(_sessions.id == bindparam("session_id")).execution_options(read_from=PRIMARY)
)


@dataclass(frozen=True, slots=True)
class Resolution:
    """Who a token or cookie speaks for: the session's user (possibly inactive: deactivation
    ends sessions, but the caller still says so), whether the session is alive, every
    user the statement read, by id, and which of them the session's user follows."""

    user: User | None
    alive: bool
    users: dict[int, User]
    followed: frozenset[int] = frozenset()


def resolve(session_id: str, user_id: int | None, kind: SessionKind, *, also: int | None = None) -> Resolution:
    """The session's user and whether the session is alive, in one statement on the primary.

    With `user_id` (a token's subject), the user must own the session; `also` names one more
    user to read in the same statement. No such session (or someone else's): `alive` is False.
    """
    parameters = {"session_id": session_id, "kind": kind.value, "at": now()}
    if user_id is None:
        statement = _SESSION_USER
    elif also is None or also == user_id:
        statement = _TOKEN_USER
        parameters["user_id"] = user_id
    else:
        statement = _TOKEN_USERS
        parameters.update(user_id=user_id, other_id=also)
    rows = db.session.execute(statement, parameters).all()
    found = {row.id: (detached_user(row), bool(row.alive)) for row in rows}
    owner_id = user_id if user_id is not None else (rows[0].id if rows else None)
    user, alive = found.get(owner_id, (None, False))
    return Resolution(user, alive, {key: each for key, (each, _) in found.items()},
                      frozenset(row.id for row in rows if row.followed))


def end(session_ids: list[str], reason: str, *, user_id: int | None = None) -> int:
    """End these sessions (of this user, when given), in the request's transaction; ending one
    twice is harmless."""
    if not session_ids:
        return 0
    return db.session.execute(_ending(session_ids, reason, user_id)).rowcount or 0


def end_whatever_follows(session_ids: list[str], reason: str, *, user_id: int | None = None) -> None:
    """End these sessions in a transaction of their own, committed now: for an ending that must
    hold whatever the request answers (a refresh token replayed: the request is refused; a logout
    whose body is then refused)."""
    with db.engine.begin() as connection:
        connection.execute(_ending(session_ids, reason, user_id))


def _ending(session_ids: list[str], reason: str, user_id: int | None) -> Update:
    stmt = update(AuthSession).where(AuthSession.id.in_(session_ids), AuthSession.ended_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(AuthSession.user_id == user_id)
    return stmt.values(ended_at=now(), end_reason=reason)


def end_all_of(user_id: int, reason: str) -> None:
    """End every session of a user in the request's transaction: a password change and the
    end of the sessions it implies land together or not at all."""
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))
        .values(ended_at=now(), end_reason=reason)
    )


def count_alive(user_id: int) -> int:
    at = now()
    return len(list(db.session.scalars(
        select(AuthSession.id).where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None),
                                     AuthSession.expires_at > at)
    )))


def prune(at: datetime | None = None) -> int:
    """Forget sessions that have ended or expired: a token naming a missing session is refused anyway."""
    at = at or now()
    result = db.session.execute(
        delete(AuthSession).where(or_(AuthSession.expires_at < at, AuthSession.ended_at.is_not(None)))
    )
    return result.rowcount or 0
