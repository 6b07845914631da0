"""flask-jwt-extended wired to the services, with every failure as problem JSON.

Out of the box the library answers bad tokens with 422 and `{"msg": ...}` and no
`WWW-Authenticate`; every loader is replaced here so none of that leaks.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, g
from flask_jwt_extended import current_user

from app import tokenerrors
from app.errors import PermissionDenied, unauthorized
from app.extensions import jwt
from app.identity import Claims, also_read, auth_required, well_formed
from app.services import tokens
from app.services.sessions import Resolution


def register_jwt_callbacks(app: Flask) -> None:
    @jwt.token_in_blocklist_loader
    def is_revoked(_header: Claims, claims: Claims) -> bool:
        if not well_formed(claims):
            return False  # the library checks revocation first; `has_required_claims` refuses it next
        found = tokens.resolve(claims, also_read())  # the session, and the user the view shows, in one statement
        g.token_user, g.token_resolution = found.user, found
        return not found.alive

    @jwt.user_lookup_loader
    def load_user(_header: Claims, claims: Claims):
        user = g.pop("token_user", None)
        return user if user is not None and user.is_active else None

    @jwt.token_verification_loader
    def has_required_claims(_header: Claims, claims: Claims) -> bool:
        return well_formed(claims)

    @jwt.unauthorized_loader
    def missing_token(_reason: str) -> Response:
        return unauthorized(tokenerrors.missing_token(), error="")

    @jwt.invalid_token_loader
    def invalid_token(_reason: str) -> Response:
        """Bad header, not a JWT, a foreign signature, and a token of the wrong type (the
        library's `WrongTokenError` arrives here too): each told apart by `app.tokenerrors`."""
        return unauthorized(tokenerrors.invalid_token())

    @jwt.expired_token_loader
    def expired_token(_header: Claims, _claims: Claims) -> Response:
        return unauthorized("The token has expired.")

    @jwt.revoked_token_loader
    def revoked_token(_header: Claims, _claims: Claims) -> Response:
        return unauthorized("The token's session has ended. Sign in again.")

    @jwt.user_lookup_error_loader
    def unknown_user(_header: Claims, _claims: Claims) -> Response:
        return unauthorized("The token's account does not exist or is deactivated.")

    @jwt.token_verification_failed_loader
    def failed_verification(_header: Claims, _claims: Claims) -> Response:
        return unauthorized("The token is missing required claims.")

    @jwt.needs_fresh_token_loader
    def needs_fresh(_header: Claims, _claims: Claims) -> Response:
        return unauthorized("A fresh token is required.")


def read_with_token() -> Resolution | None:
    """What the statement that resolved this request's token read."""
    return g.get("token_resolution")


def admin_required(view: Callable) -> Callable:
    """A valid access token of an admin; others get 403."""

    @wraps(view)
    @auth_required()
    def wrapper(*args: Any, **kwargs: Any):
        if not current_user.is_admin:
            raise PermissionDenied("Admins only.")
        return view(*args, **kwargs)

    return wrapper
