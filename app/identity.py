"""Who a request's bearer token speaks for, decided once per request.

A token speaks for its user only when it verifies, has the claims the services rely on,
and its session is alive. Anything else (a refresh token already spent, a session that
ended, a token of an account since deactivated) is an anonymous client: the rate limits
count it against the client's address, never against the user the token names, so an old
token cannot spend its owner's budgets.

The rate limiter's keys, the replica choice and flask-jwt-extended's revocation check all
read the one answer kept on `flask.g`: the token is decoded and its session looked up once.
How a session is looked up is the services' business; the factory hands it in
(`init_app(app, resolve)`), so the rate limiter, which the extensions build, can ask
without importing the services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, current_app, g, request
from flask_jwt_extended import decode_token

from app.bearer import bearer_token
from app.jsonbody import json_body

Claims = dict[str, Any]
SESSION_CLAIM = "sid"
MAX_JTI_LENGTH = 64
SESSION_ID_LENGTH = 32  # AuthSession.id: 16 random bytes in hex
EXTENSION_KEY = "identity"


class Resolution(Protocol):
    """What looking up a token's session answers (app.services.sessions.Resolution)."""

    user: Any
    alive: bool


Resolve = Callable[[Claims, "int | None"], Resolution]


@dataclass(frozen=True, slots=True)
class Bearer:
    """A verified bearer token of this request, its claims and what its session lookup found."""

    token: str
    claims: Claims
    resolution: Resolution

    @property
    def live(self) -> bool:
        user = self.resolution.user
        return self.resolution.alive and user is not None and user.is_active

    @property
    def user_id(self) -> int:
        return int(self.claims["sub"])

    @property
    def session_id(self) -> str:
        return self.claims[SESSION_CLAIM]


def init_app(app: Flask, resolve: Resolve) -> None:
    app.extensions[EXTENSION_KEY] = resolve


def well_formed(claims: Claims) -> bool:
    """The claims the services rely on: an expiry, a known type, a storable `jti`, a numeric `sub`,
    and the session (`sid`) the token belongs to; tokens from before sessions have none."""
    sub, jti, sid = claims.get("sub"), claims.get("jti"), claims.get(SESSION_CLAIM)
    return (
        "exp" in claims
        and claims.get("type") in ("access", "refresh")
        and isinstance(jti, str)
        and 0 < len(jti) <= MAX_JTI_LENGTH
        and isinstance(sub, str)
        and sub.isascii()
        and sub.isdigit()
        and len(sub) <= 18
        and isinstance(sid, str)
        and len(sid) == SESSION_ID_LENGTH
        and sid.isascii()
        and sid.isalnum()
    )


def bearer() -> Bearer | None:
    """This request's verified, well-formed bearer token with its session lookup, or None."""
    if "bearer" not in g:
        g.bearer = _read_bearer()
    return g.bearer


def live_user_id() -> int | None:
    """The user a live session of this request's token belongs to, else None (anonymous)."""
    found = bearer()
    return found.user_id if found is not None and found.live else None


def reads_user_with_token(view: Callable) -> Callable:
    """Mark a view whose URL's `user_id` is read in the statement that looks up the token's
    session, so that showing a profile costs one round trip (`bearer().resolution.users`)."""
    view.reads_user_with_token = True  # type: ignore[attr-defined]
    return view


def takes_refresh_token(view: Callable) -> Callable:
    """Mark a view that takes a refresh token, as the bearer token or, without one, in its JSON
    body as `{"refresh_token": ...}` (`jwt_required(refresh=True, locations=["headers", "json"])`)."""
    view.takes_refresh_token = True  # type: ignore[attr-defined]
    return view


def expects_refresh_token() -> bool:
    """Whether this request's view takes a refresh token rather than an access token."""
    return bool(getattr(current_app.view_functions.get(request.endpoint or ""), "takes_refresh_token", False))


def presented_token() -> str | None:
    """The token this request presents, where flask-jwt-extended looks for it: the bearer token,
    else, on a view that takes a refresh token, the body's `refresh_token`."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is None and expects_refresh_token():
        body = json_body(silent=True)
        found = body.get(current_app.config["JWT_REFRESH_JSON_KEY"]) if isinstance(body, dict) else None
        token = found if isinstance(found, str) and found else None
    return token


def _read_bearer() -> Bearer | None:
    token = presented_token()
    if token is None:
        return None
    try:
        claims = decode_token(token)
    except Exception:  # expired, forged, malformed: flask-jwt-extended says why when a view needs it
        return None
    if not well_formed(claims):
        return None
    return Bearer(token, claims, current_app.extensions[EXTENSION_KEY](claims, _also_read()))


def _also_read() -> int | None:
    view = current_app.view_functions.get(request.endpoint or "")
    user_id = (request.view_args or {}).get("user_id")
    if getattr(view, "reads_user_with_token", False) and isinstance(user_id, int):
        return user_id
    return None
