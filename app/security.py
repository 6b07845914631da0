"""Password hashing and the security headers every response carries."""

from __future__ import annotations

import bcrypt
from flask import Flask, Response, current_app, request


def hash_password(password: str) -> str:
    rounds = current_app.config["BCRYPT_ROUNDS"]
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when the password matches; never raises on odd input (bcrypt 5 rejects > 72 bytes).

    Without a hash (unknown account) it still spends one check, so timing does
    not reveal which emails exist.
    """
    candidate = password.encode("utf-8", "surrogatepass")
    if password_hash is None or len(candidate) > 72:
        spend_password_check()
        return False
    try:
        return bcrypt.checkpw(candidate, password_hash.encode())
    except ValueError:
        return False


def spend_password_check() -> None:
    """Cost one bcrypt check at the configured work factor, for timing parity."""
    bcrypt.checkpw(b"x", _dummy_hash())


def _dummy_hash() -> bytes:
    cache = current_app.extensions.setdefault("dummy_password_hash", {})
    rounds = current_app.config["BCRYPT_ROUNDS"]
    if rounds not in cache:
        cache[rounds] = bcrypt.hashpw(b"dummy-password-for-timing", bcrypt.gensalt(rounds=rounds))
    return cache[rounds]


def register_security_headers(app: Flask) -> None:
    hsts = app.config.get("ENV_NAME") == "production"

    @app.after_request
    def set_security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api") or request.path.startswith("/health"):
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
            # Personal data or tokens: anything authenticated, and every write's answer.
            if "Authorization" in request.headers or request.method not in ("GET", "HEAD"):
                headers["Cache-Control"] = "no-store"
        if hsts:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
