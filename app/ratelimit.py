"""Flask-Limiter, and the keys that decide whom a request counts against.

Login and refresh count per client IP and per target email; writes count per
user (from the bearer token, verified without touching the database) or per IP.
The client IP is `request.remote_addr`, which honours `X-Forwarded-For` only
when `PROXY_FIX_HOPS` installs werkzeug's ProxyFix.

Counters live in `RATELIMIT_STORAGE_URI`: Redis (shared by every worker and
host) when `REDIS_URL` is set, otherwise process memory, where each gunicorn
worker counts on its own.
"""

from __future__ import annotations

import flask_limiter
from flask import Flask, current_app, request
from flask_jwt_extended import decode_token

from app.jsonbody import json_body

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Limiter(flask_limiter.Limiter):
    """Flask-Limiter whose settings follow the app that serves the request.

    The extension object is process-wide and keeps the first app's switch, key
    prefix and limits; the factory may build several apps in one process (tests,
    the CLI). So the switch is checked per request, the limits are callables
    that read the current app's config, and each app's key prefix applies.
    """

    def init_app(self, app: Flask) -> None:
        self._key_prefix = ""
        super().init_app(app)


def limits_disabled() -> bool:
    return not current_app.config.get("RATELIMIT_ENABLED", True)


def client_ip() -> str:
    return request.remote_addr or "unknown"


def write_limit_exempt() -> bool:
    return request.method not in WRITE_METHODS or not request.path.startswith("/api")


def write_limit_key() -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        try:
            return "user:" + decode_token(header.removeprefix("Bearer ").strip())["sub"]
        except Exception:  # any undecodable token is just an anonymous client
            pass
    return "ip:" + client_ip()


def target_email_key() -> str:
    """The email a login is aimed at; for refresh, the token's subject."""
    body = json_body(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str):
        # Any text may arrive here before validation; keep the key encodable for Redis.
        return "email:" + email.strip().lower()[:320].encode("utf-8", "backslashreplace").decode()
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
    """Empty (no limit) unless `RATELIMIT_READ` is configured."""
    return current_app.config.get("RATELIMIT_READ") or ""


def read_limit_exempt() -> bool:
    return request.method not in ("GET", "HEAD") or not request.path.startswith("/api")
