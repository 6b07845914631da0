"""Access and refresh tokens: every pair belongs to a session (a refresh-token family).

Tokens carry the session's id as the `sid` claim. Refreshing spends the family's one
current refresh token for a new pair; presenting any earlier refresh token of the
family (a copy a thief kept, or the owner's after a thief refreshed first) ends the
whole family, as RFC 9700 §4.14.2 recommends.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError
from sqlalchemy import select, update

from app.database import note_reader
from app.errors import AuthenticationFailed, InvalidRefreshToken
from app.extensions import db
from app.identity import SESSION_CLAIM, Claims
from app.models import AuthSession, SessionKind, User, is_possible_id
from app.services import sessions
from app.services.sessions import EndReason


def _refresh_lifetime():
    return current_app.config["JWT_REFRESH_TOKEN_EXPIRES"]


def _pair(user: User, session_id: str, refresh_jti: str) -> dict[str, Any]:
    identity = str(user.id)
    note_reader(user.id)  # with replicas, this session's reads start where the primary is now
    lifetime = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": create_access_token(identity=identity, additional_claims={SESSION_CLAIM: session_id}),
        "refresh_token": create_refresh_token(
            identity=identity, additional_claims={SESSION_CLAIM: session_id, "jti": refresh_jti}
        ),
        "token_type": "bearer",
        "expires_in": int(lifetime.total_seconds()),
    }


def start_session(user: User) -> dict[str, Any]:
    """Start a new session for `user` (added to the request's unit of work) and return its first
    token pair."""
    refresh_jti = str(uuid.uuid4())
    session = sessions.start(user, SessionKind.API, _refresh_lifetime(), refresh_jti=refresh_jti)
    return _pair(user, session.id, refresh_jti)


def resolve(claims: Claims, also: int | None = None) -> sessions.Resolution:
    """The token's user and whether its session is alive (and the user `also`), in one statement."""
    also = also if also is not None and is_possible_id(also) else None
    return sessions.resolve(claims[SESSION_CLAIM], int(claims["sub"]), SessionKind.API, also=also)


def rotate(refresh_claims: Claims, user: User) -> dict[str, Any]:
    """Spend the family's current refresh token for a new pair.

    The conditional UPDATE lets exactly one of two uses of the same token succeed;
    the other (a replay, or a race the client lost) ends the family.
    """
    session_id = refresh_claims[SESSION_CLAIM]
    new_jti = str(uuid.uuid4())
    now = sessions.now()
    started_after = now - timedelta(days=current_app.config["SESSION_MAX_DAYS"])
    result = db.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.user_id == user.id,
               AuthSession.refresh_jti == refresh_claims["jti"], AuthSession.ended_at.is_(None),
               AuthSession.created_at > started_after)
        .values(refresh_jti=new_jti, expires_at=now + _refresh_lifetime())
    )
    if result.rowcount != 1:
        db.session.rollback()
        too_old = db.session.scalar(select(AuthSession.created_at <= started_after)
                                    .where(AuthSession.id == session_id))
        sessions.end_whatever_follows([session_id], EndReason.MAX_LIFETIME if too_old else EndReason.REFRESH_REUSE,
                                      user_id=user.id)
        if too_old:
            raise AuthenticationFailed("This session reached its maximum lifetime (`SESSION_MAX_DAYS`). "
                                       "Sign in again.")
        raise AuthenticationFailed("This refresh token was already used: its session has been ended. "
                                   "Sign in again.")
    return _pair(user, session_id, new_jti)


def logout(access_claims: Claims, user: User) -> None:
    """End the caller's session (its access and refresh tokens), committed at once: nothing
    that follows, such as a bad refresh token in the request, can keep it alive."""
    sessions.end_whatever_follows([access_claims[SESSION_CLAIM]], EndReason.LOGOUT, user_id=user.id)


def logout_refresh_token(refresh_token: str, user: User) -> None:
    """After `logout`: end the session of another refresh token of `user` (another device).
    One that is not theirs, or not a valid refresh token, ends nothing more; the
    `InvalidRefreshToken` says that the caller's own session has ended all the same."""
    try:
        session_id = decode_refresh_token(refresh_token, user)[SESSION_CLAIM]
    except InvalidRefreshToken as error:
        raise InvalidRefreshToken(error.message, "Your session has ended, but `refresh_token` is not a valid "
                                                 "refresh token of yours: no other session was ended.") from None
    sessions.end([session_id], EndReason.LOGOUT, user_id=user.id)


def decode_refresh_token(token: str, owner: User) -> Claims:
    """Claims of a refresh token that belongs to `owner`, else `InvalidRefreshToken`."""
    try:
        claims = decode_token(token)
    except (JWTExtendedException, PyJWTError, ValueError):
        claims = None
    if (not claims or claims.get("type") != "refresh" or claims.get("sub") != str(owner.id)
            or not isinstance(claims.get(SESSION_CLAIM), str)):
        raise InvalidRefreshToken("Not a valid refresh token for this user.")
    return claims
