"""Access and refresh tokens: issuing, rotation and revocation.

Revocations live in the database so every worker and host agrees at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app
from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError
from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError

from app.database import note_reader
from app.errors import AuthenticationFailed, ValidationFailed
from app.extensions import db
from app.models import RevokedToken, User

Claims = dict[str, Any]


def issue_tokens(user: User) -> dict[str, Any]:
    identity = str(user.id)
    note_reader(user.id)  # with replicas, this session's reads start where the primary is now
    lifetime = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": create_access_token(identity=identity),
        "refresh_token": create_refresh_token(identity=identity),
        "token_type": "bearer",
        "expires_in": int(lifetime.total_seconds()),
    }


def load_token_user(claims: Claims) -> tuple[User | None, bool]:
    """The token's user and whether the token is revoked, in one query."""
    revoked = exists().where(RevokedToken.jti == claims["jti"])
    row = db.session.execute(
        select(User, revoked.label("revoked")).where(User.id == int(claims["sub"]))
    ).first()
    if row is None:
        return None, db.session.scalar(select(revoked)) or False
    return row[0], bool(row[1])


def _revocation(claims: Claims) -> RevokedToken:
    return RevokedToken(
        jti=claims["jti"],
        token_type=claims.get("type", "access"),
        user_id=int(claims["sub"]),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )


def rotate(refresh_claims: Claims, user: User) -> dict[str, Any]:
    """Spend a refresh token for a new pair. The primary key on `jti` lets only one
    of two concurrent uses succeed."""
    db.session.add(_revocation(refresh_claims))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AuthenticationFailed("Token has been revoked.") from None
    return issue_tokens(user)


def revoke(*claims_list: Claims) -> None:
    """Revoke tokens; revoking one twice is harmless."""
    for claims in claims_list:
        if db.session.get(RevokedToken, claims["jti"]) is None:
            db.session.add(_revocation(claims))
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent request revoked it first: the outcome is the same
        db.session.rollback()


def decode_refresh_token(token: str, owner: User) -> Claims:
    """Claims of a refresh token that belongs to `owner`, or a 422 naming `refresh_token`."""
    try:
        claims = decode_token(token)
    except (JWTExtendedException, PyJWTError, ValueError):
        claims = None
    if not claims or claims.get("type") != "refresh" or claims.get("sub") != str(owner.id):
        raise ValidationFailed(errors={"refresh_token": ["Not a valid refresh token for this user."]})
    return claims


def prune_revocations(now: datetime | None = None) -> int:
    """Forget revocations of tokens that have expired anyway."""
    result = db.session.execute(
        delete(RevokedToken).where(RevokedToken.expires_at < (now or datetime.now(UTC)))
    )
    db.session.commit()
    return result.rowcount or 0
