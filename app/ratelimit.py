"""Flask-Limiter, and the keys that decide whom a request counts against.

Login and refresh count per client IP and per target email; writes, reads and
searches count per user (a bearer token whose session is live, `app.identity`)
or, for anonymous clients and tokens that speak for no one, per IP.
The client IP is `request.remote_addr`, which honours `X-Forwarded-For` only
when `PROXY_FIX_HOPS` installs werkzeug's ProxyFix.

Counters live in `RATELIMIT_STORAGE_URI`: Redis (shared by every worker and
host) when `REDIS_URL` is set, otherwise process memory, where each gunicorn
worker counts on its own.
"""

from __future__ import annotations

import flask_limiter
from flask import Flask, Response, current_app, g, request

from app import faces
from app.emails import email_key
from app.errors import OUTAGE_RETRY_AFTER
from app.identity import live_user_id
from app.jsonbody import json_body

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
RATE_LIMIT_HEADER_NAMES = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


class Limiter(flask_limiter.Limiter):
    """Flask-Limiter whose settings follow the app that serves the request.

    The extension object is process-wide and keeps the first app's switch, key
    prefix and limits; the factory may build several apps in one process (tests,
    the CLI). So the switch is checked per request, the limits are callables
    that read the current app's config, and each app's key prefix applies.
    """

    def init_app(self, app: Flask) -> None:
        self._key_prefix = ""
        # Registered first, so it runs after Flask-Limiter's own header hook (Flask runs
        # after-request hooks in reverse order).
        if retry_after_only_when_it_means_something not in app.after_request_funcs.get(None, []):
            app.after_request(retry_after_only_when_it_means_something)
        super().init_app(app)


def retry_after_only_when_it_means_something(response: Response) -> Response:
    """`Retry-After` on a 429 (when the limit resets) and on a 503 (the outage value), nowhere else;
    `X-RateLimit-*` on reads only with their 429.

    Flask-Limiter puts the window's reset on every counted response, and on a 503 the
    larger of its reset and ours (an hour for registration); neither tells a client anything.
    A view that means one of its own sets `g.retry_after` (an idempotent create still running).
    """
    if response.status_code == 503:
        response.headers["Retry-After"] = OUTAGE_RETRY_AFTER
    elif response.status_code != 429:
        # Removed only when present: one pass over the headers, where a `pop` that misses
        # raises and catches a KeyError and a `remove` rebuilds the list.
        present = {name.lower() for name, _ in response.headers}
        unwanted = RATE_LIMIT_HEADER_NAMES if request.method in READ_METHODS else ()  # reads: only on a 429
        for name in ("Retry-After", *unwanted):
            if name.lower() in present:
                response.headers.remove(name)
        if g.get("retry_after"):
            response.headers["Retry-After"] = g.retry_after
    return response


def limits_disabled() -> bool:
    return not current_app.config["RATELIMIT_ENABLED"]


def client_ip() -> str:
    return request.remote_addr or "unknown"


def write_limit_exempt() -> bool:
    return request.method not in WRITE_METHODS or not faces.is_api_resource()


def write_limit_key() -> str:
    """A user's own budget only for a token whose session is live (`app.identity`): a spent,
    revoked or foreign token counts against the client's address, never against its owner."""
    user_id = live_user_id()
    return f"user:{user_id}" if user_id is not None else "ip:" + client_ip()


def target_email_key() -> str:
    """The email a login is aimed at; for refresh, the token's subject."""
    body = json_body(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str):
        # Any text may arrive here before validation; keep the key encodable for Redis.
        return "email:" + email_key(email)
    return write_limit_key()


def login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


def account_mail_limit() -> str:
    """Password reset requests and confirmations, verifications and resends."""
    return current_app.config["RATELIMIT_ACCOUNT_MAIL"]


def register_limit() -> str:
    return current_app.config["RATELIMIT_REGISTER"]


def write_limit() -> str:
    return current_app.config["RATELIMIT_WRITE"]


def read_limit() -> str:
    """Signed-in clients read on their own, larger budget; anonymous ones share their IP's.
    An empty setting means no limit."""
    if write_limit_key().startswith("user:"):
        return current_app.config.get("RATELIMIT_READ_USER") or ""
    return current_app.config.get("RATELIMIT_READ") or ""


def search_limit() -> str:
    """Searches cost more than other reads: a tighter budget, per user or IP."""
    return current_app.config.get("RATELIMIT_SEARCH") or ""


def not_a_search() -> bool:
    """Searches are reads of the API with `q` (posts, an author's posts, the feed)."""
    return "q" not in request.args or read_limit_exempt()


def read_limit_exempt() -> bool:
    return request.method not in READ_METHODS or not faces.is_api_resource()
