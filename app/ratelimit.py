"""Keys for Flask-Limiter: who a request counts against.

Login and refresh count per client IP and per target email; writes count per
user (from the bearer token, verified without touching the database) or per IP.
The client IP is `request.remote_addr`, which honours `X-Forwarded-For` only
when `PROXY_FIX_HOPS` installs werkzeug's ProxyFix.
"""

from __future__ import annotations

from flask import current_app, request
from flask_jwt_extended import decode_token

from app.jsonbody import json_body

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
        return "email:" + email.strip().lower()[:320]
    return write_limit_key()


def login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


def register_limit() -> str:
    return current_app.config["RATELIMIT_REGISTER"]


def write_limit() -> str:
    return current_app.config["RATELIMIT_WRITE"]


def read_limit_exempt() -> bool:
    return request.method not in ("GET", "HEAD") or not request.path.startswith("/api")
