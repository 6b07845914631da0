"""Who a request's bearer token speaks for, decided once per request.

flask-jwt-extended verifies the token once (`verify_jwt_in_request`, its public function)
the first time anything asks: the rate limiter's key, the replica choice or a view's
`auth_required`. Its revocation callback looks up the token's session in that same pass
(`app.auth`); the result stays on `flask.g`, so the token is decoded and its session checked
once, whoever asks first, and `current_user` and `get_jwt()` work as the library documents.

A token speaks for its user only when it verifies and its session is alive. Anything else
(a refresh token already spent, a session that ended, a token of an account since
deactivated) is an anonymous client: the rate limits count it against the client's address,
never against the user the token names, so an old token cannot spend its owner's budgets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_jwt_extended import get_current_user, get_jwt, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError

from app.bearer import bearer_token, canonical_authorization
from app.jsonbody import json_body

Claims = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
SESSION_CLAIM = "sid"
MAX_JTI_LENGTH = 64
SESSION_ID_LENGTH = 32  # AuthSession.id: 16 random bytes in hex


@dataclass(frozen=True, slots=True)
class Bearer:
    """This request's verified bearer token: its claims and its live user."""

    claims: Claims
    user: Any

    @property
    def user_id(self) -> int:
        return int(self.claims["sub"])

    @property
    def session_id(self) -> str:
        return self.claims[SESSION_CLAIM]

    @property
    def kind(self) -> str:
        return self.claims["type"]


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
    """This request's bearer token if it verifies and its session is live (either token type),
    else None. Verified on the first call of the request; later calls read the answer."""
    if "bearer" not in g:
        g.bearer = _verify()
    return g.bearer


def live_user_id() -> int | None:
    """The user a live session of this request's token belongs to, else None (anonymous)."""
    found = bearer()
    return found.user_id if found is not None else None


def auth_required(refresh: bool = False) -> Callable[[F], F]:
    """The view needs a live access token (a refresh token with `refresh=True`).

    The request's one verification decides; only when it did not find the right kind of token
    is the library asked again, for its own error (missing, expired, revoked, wrong type), which
    the callbacks in `app.auth` answer as problem JSON."""
    wanted = "refresh" if refresh else "access"

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            found = bearer()
            if found is None or found.kind != wanted:
                verify_jwt_in_request(refresh=refresh, locations=_locations())
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def reads_user_with_token(view: F) -> F:
    """Mark a view whose URL's `user_id` is read in the statement that looks up the token's
    session, so that showing a profile costs one round trip (`app.auth.read_with_token`)."""
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


def also_read() -> int | None:
    """The user the current view shows, when it asked to read them with the token's session."""
    view = current_app.view_functions.get(request.endpoint or "")
    user_id = (request.view_args or {}).get("user_id")
    if getattr(view, "reads_user_with_token", False) and isinstance(user_id, int):
        return user_id
    return None


def _locations() -> list[str] | None:
    """Where flask-jwt-extended looks for this request's token: the header, and the JSON body
    too on a view that takes a refresh token (`JWT_TOKEN_LOCATION` says headers only)."""
    return ["headers", "json"] if expects_refresh_token() else None


def _verify() -> Bearer | None:
    locations = _locations()
    header = request.environ.get("HTTP_AUTHORIZATION")
    if not header and locations is None:
        return None
    if header and not header.startswith("Bearer "):
        # flask-jwt-extended compares the scheme case-sensitively (`JWT_HEADER_TYPE`); RFC 9110
        # makes it case-insensitive, and login answers `"token_type": "bearer"`.
        canonical = canonical_authorization(header)
        if canonical is None and locations is None:
            return None
        if canonical is not None:
            request.environ["HTTP_AUTHORIZATION"] = canonical
    try:
        # `refresh` names the JSON key the body's token is under; the type is the view's to check.
        if verify_jwt_in_request(optional=True, refresh=locations is not None, verify_type=False,
                                 locations=locations) is None:
            return None
    except (JWTExtendedException, PyJWTError):  # a view that needs a token asks again, for the error
        return None
    return Bearer(get_jwt(), get_current_user())
