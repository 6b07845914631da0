"""Password hashing and the security headers every response carries."""

from __future__ import annotations

import bcrypt
from flask import Flask, Response, current_app, request
from werkzeug.datastructures import Headers

from app.metrics import BCRYPT


def hash_password(password: str) -> str:
    rounds = current_app.config["BCRYPT_ROUNDS"]
    BCRYPT.labels("hash").inc()
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
    BCRYPT.labels("check").inc()
    try:
        return bcrypt.checkpw(candidate, password_hash.encode())
    except ValueError:
        return False


def spend_password_check() -> None:
    """Cost one bcrypt check at the configured work factor, for timing parity."""
    BCRYPT.labels("check").inc()
    bcrypt.checkpw(b"x", _dummy_hash())


def _dummy_hash() -> bytes:
    cache = current_app.extensions.setdefault("dummy_password_hash", {})
    rounds = current_app.config["BCRYPT_ROUNDS"]
    if rounds not in cache:
        cache[rounds] = bcrypt.hashpw(b"dummy-password-for-timing", bcrypt.gensalt(rounds=rounds))
    return cache[rounds]


_EVERY_RESPONSE = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"))
_API_RESPONSE = (
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
)
_HSTS = (("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),)
# Each docs page allows what it loads and no more (tests/e2e/test_docs_browser.py): scripts,
# styles and the document from this origin, images as data: URIs. ReDoc's styled-components
# also write <style> elements, and its search runs in a blob: worker.
_DOCS_POLICY = ("default-src 'none'; script-src 'self'; connect-src 'self'; base-uri 'none'; "
                "form-action 'none'; frame-ancestors 'none'; ")
DOCS_CONTENT_SECURITY_POLICIES = {
    "api-docs.openapi_swagger_ui": _DOCS_POLICY + "style-src 'self'; img-src data:",
    "api-docs.openapi_redoc": _DOCS_POLICY + "style-src 'self' 'unsafe-inline'; img-src data:; worker-src blob:",
}


def register_security_headers(app: Flask) -> None:
    hsts = _HSTS if app.config.get("ENV_NAME") == "production" else ()
    pages, api = _EVERY_RESPONSE + hsts, _EVERY_RESPONSE + _API_RESPONSE + hsts
    docs = {endpoint: (*_EVERY_RESPONSE, ("X-Frame-Options", "DENY"), ("Content-Security-Policy", policy), *hsts)
            for endpoint, policy in DOCS_CONTENT_SECURITY_POLICIES.items()}

    @app.after_request
    def set_security_headers(response: Response) -> Response:
        """Each header unless the view set its own; for API responses also no framing at all,
        and no caching of anything personal."""
        is_api = request.path.startswith(("/api", "/health"))
        _add_missing(response.headers, api if is_api else docs.get(request.endpoint, pages))
        # Personal data or tokens: anything authenticated, and every write's answer.
        if is_api and ("Authorization" in request.headers or request.method not in ("GET", "HEAD")):
            response.headers["Cache-Control"] = "no-store"
        return response


def _add_missing(headers: Headers, defaults: tuple[tuple[str, str], ...]) -> None:
    """`Headers.setdefault` per name, in one pass: werkzeug looks each missing name up by
    raising and catching a KeyError, which made these headers 4% of an API request."""
    present = {name.lower() for name, _ in headers}
    for name, value in defaults:
        if name.lower() not in present:
            headers.add(name, value)
