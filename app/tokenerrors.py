"""What was wrong with a request's token, in the service's words, and what to send instead.

flask-jwt-extended hands its failure loaders a reason in its own (and PyJWT's) words:
"Invalid header padding", "Only non-refresh tokens are allowed", a codec error. Those name
the library's internals, not the client's mistake, and change between versions. So the reason
is not read at all: what went wrong is worked out again from the request itself (the header's
shape, whether the token parses as a JWT, whether it verifies, its `type`), which is cheap
and happens only on a refused request.
"""

from __future__ import annotations

import jwt
from flask import request
from flask_jwt_extended import decode_token

from app.identity import expects_refresh_token, presented_token

LOGIN = "POST /api/auth/login"
REFRESH = "POST /api/auth/refresh"
SIGN_IN_AGAIN = f"Sign in again ({LOGIN})."


def _what_to_send() -> str:
    if expects_refresh_token():
        return (f"send the refresh_token from {LOGIN} (or from the last {REFRESH}) as "
                '`Authorization: Bearer <refresh_token>` or in the JSON body as `{"refresh_token": "<refresh_token>"}`')
    return f"send the access_token from {LOGIN} (or {REFRESH}) as `Authorization: Bearer <access_token>`"


def _header_problem() -> str | None:
    """What is wrong with the Authorization header's shape, or None when it holds one bearer token
    (or, on the refresh route, is absent and the body may hold the token)."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return None if expects_refresh_token() else f"No bearer token: {_what_to_send()}."
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "bearer":
        return f"The Authorization header has no `Bearer` scheme: {_what_to_send()}."
    token = rest.strip()
    if not token:
        return f"The Authorization header has the `Bearer` scheme but no token: {_what_to_send()}."
    if "," in token or any(ch.isspace() for ch in token):
        return f"The Authorization header must hold exactly one token, without spaces: {_what_to_send()}."
    return None


def missing_token() -> str:
    """Why no token was found where this route looks for one."""
    return _header_problem() or f"No token: {_what_to_send()}."


def invalid_token() -> str:
    """Why the token presented was refused (flask-jwt-extended's `invalid_token_loader`)."""
    header = request.headers.get("Authorization", "")
    if header.strip().partition(" ")[0].lower() == "bearer":  # else the token came from the body
        problem = _header_problem()
        if problem is not None:
            return problem
    token = presented_token()
    if token is None:
        return f"No token: {_what_to_send()}."
    if token[0] in "\"'" or token[-1] in "\"'":
        return f"The token is in quotes: {_what_to_send()}, without quotes."
    try:
        jwt.get_unverified_header(token)
        jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return f"The token is not a valid JWT: {_what_to_send()}."
    try:
        claims = decode_token(token)
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
        return ("The token's signature does not verify: it was not issued by this service, "
                f"or the service's key has changed since. {SIGN_IN_AGAIN}")
    except jwt.ExpiredSignatureError:
        return f"The token has expired. {SIGN_IN_AGAIN}"
    except jwt.ImmatureSignatureError:
        return ("The token is not valid yet: its `nbf` or `iat` lies in the future. "
                f"Check the client's clock, or sign in again ({LOGIN}).")
    except Exception:  # a claim missing or malformed (PyJWT's or flask-jwt-extended's own check)
        return f"The token lacks a claim this service requires, or has a malformed one. {SIGN_IN_AGAIN}"
    # It verifies, so what the library refused is its type.
    if expects_refresh_token() and claims.get("type") != "refresh":
        return (f"This is not a refresh token: {REFRESH} takes the refresh_token from {LOGIN} "
                "(or from the last refresh), not the access token.")
    if not expects_refresh_token() and claims.get("type") == "refresh":
        return f"This is a refresh token: send it only to {REFRESH}; use the access token here."
    return f"The token was refused. {SIGN_IN_AGAIN}"
