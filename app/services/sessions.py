"""Sign-in sessions: an API refresh-token family or an admin page session.

A session is alive while its row has no `ended_at` and its `expires_at` lies ahead.
Resolving a token or an admin cookie is one SELECT joining the user and the
session; ending sessions is one UPDATE. Both live in the database, so every worker
and host agrees at the next request.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update

from app.extensions import db
from app.models import AuthSession, SessionKind, User


class EndReason:
    LOGOUT = "logout"
    LOGOUT_ALL = "logout-all"
    PASSWORD = "password-changed"
    DEACTIVATED = "deactivated"
    ROLE = "role-changed"
    REFRESH_REUSE = "refresh-reuse"
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


def _alive(kind: SessionKind, at: datetime):
    return and_(AuthSession.kind == kind.value, AuthSession.ended_at.is_(None), AuthSession.expires_at > at)


def resolve(session_id: str, user_id: int | None, kind: SessionKind) -> tuple[User | None, bool]:
    """The session's user and whether the session is alive, in one statement.

    `(None, False)` when there is no such session (or it belongs to someone else).
    The user may be inactive: deactivation ends sessions, but the caller still says so.
    """
    stmt = (
        select(User, _alive(kind, now()).label("alive"))
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.id == session_id)
    )
    if user_id is not None:
        stmt = stmt.where(User.id == user_id)
    row = db.session.execute(stmt).first()
    if row is None:
        return None, False
    return row[0], bool(row[1])


def end(session_ids: list[str], reason: str, *, user_id: int | None = None) -> int:
    """End these sessions (of this user, when given); ending one twice is harmless. Commits."""
    if not session_ids:
        return 0
    stmt = update(AuthSession).where(AuthSession.id.in_(session_ids), AuthSession.ended_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(AuthSession.user_id == user_id)
    count = db.session.execute(stmt.values(ended_at=now(), end_reason=reason)).rowcount or 0
    db.session.commit()
    return count


def end_all_of(user_id: int, reason: str) -> None:
    """End every session of a user as part of the caller's transaction (which commits it):
    a password change and the end of the sessions it implies land together or not at all."""
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))
        .values(ended_at=now(), end_reason=reason)
    )


def end_all(user_id: int, reason: str) -> None:
    """End every session of a user now: logout-all, the admin's "End all sessions"."""
    end_all_of(user_id, reason)
    db.session.commit()


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
    db.session.commit()
    return result.rowcount or 0
