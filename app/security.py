"""Password hashing and the security headers every response carries."""

from __future__ import annotations

import bcrypt
from flask import Flask, Response, current_app, request
from opentelemetry import trace

from app.metrics import BCRYPT

# bcrypt has no instrumentation of its own: a span per computation shows where a slow login's time
# went. Without tracing (no SDK started) the API's tracer makes no span.
tracer = trace.get_tracer(__name__)


def hash_password(password: str) -> str:
    rounds = current_app.config["BCRYPT_ROUNDS"]
    BCRYPT.labels("hash").inc()
    with tracer.start_as_current_span("bcrypt hash", attributes={"bcrypt.rounds": rounds}):
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
    with tracer.start_as_current_span("bcrypt check"):
        try:
            return bcrypt.checkpw(candidate, password_hash.encode())
        except ValueError:
            return False


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash was made at another cost than `BCRYPT_ROUNDS` (`$2b$12$...`)."""
    try:
        return int(password_hash.split("$")[2]) != current_app.config["BCRYPT_ROUNDS"]
    except (IndexError, ValueError):
        return False


def spend_password_check() -> None:
    """Cost one bcrypt check at the configured work factor, for timing parity."""
    BCRYPT.labels("check").inc()
    dummy = _dummy_hash()
    with tracer.start_as_current_span("bcrypt check"):
        bcrypt.checkpw(b"x", dummy)


def _dummy_hash() -> bytes:
    cache = current_app.extensions.setdefault("dummy_password_hash", {})
    rounds = current_app.config["BCRYPT_ROUNDS"]
    if rounds not in cache:
        cache[rounds] = bcrypt.hashpw(b"dummy-password-for-timing", bcrypt.gensalt(rounds=rounds))
    return cache[rounds]


# Every response, unless a blueprint's own hook (they run first) set the header already:
# nothing may frame it, sniff it, or load anything into it.
_DEFAULTS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
)
_HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
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
    defaults = (*_DEFAULTS, _HSTS) if app.config.get("ENV_NAME") == "production" else _DEFAULTS

    @app.after_request
    def set_security_headers(response: Response) -> Response:
        policy = DOCS_CONTENT_SECURITY_POLICIES.get(request.endpoint or "")
        if policy is not None:
            response.headers["Content-Security-Policy"] = policy
        # One pass over the headers rather than `setdefault` per header: each of its misses
        # raises and catches a KeyError inside werkzeug, on every response.
        present = {name.lower() for name, _ in response.headers}
        for name, value in defaults:
            if name.lower() not in present:
                response.headers.add(name, value)
        return response
