"""Domain errors, and every error rendered as RFC 9457 problem details.

Services raise the `DomainError` subclasses; they know nothing of HTTP
responses. Every error becomes `application/problem+json`, except those of the
admin pages (`app.faces.is_admin`), which get HTML through a renderer the admin registers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Flask, Response, current_app, json, request
from markupsafe import escape
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.exceptions import NotFound as NoRoute
from werkzeug.routing import Rule

from app import faces
from app.logformat import escape_controls, loggable_path

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
OUTAGE_RETRY_AFTER = "5"  # seconds, on every 503

FieldErrors = Mapping[str, list[str] | Any]
F = TypeVar("F", bound=Callable[..., Any])


class DomainError(Exception):
    """A rule of the service said no. What that is in HTTP is `STATUS`'s business."""

    default_detail = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, errors: FieldErrors | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.errors = errors
        self.headers = dict(headers or {})
        super().__init__(self.detail)


class ValidationFailed(DomainError):
    default_detail = "The request contains invalid fields."


class InvalidInput(ValidationFailed):
    """One input broke a rule: the class names the rule, `FIELD_OF` the request field that
    carried the input, and `message` is what is said about that field."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(detail)
        self.message = message


class CurrentPasswordRequired(InvalidInput):
    """Changing a password or an email needs the account's current password."""


class WrongCurrentPassword(InvalidInput):
    pass


class InvalidRefreshToken(InvalidInput):
    """Not a refresh token, or not one of the caller's."""


class SelfFollow(InvalidInput):
    pass


class UnreadableSearch(InvalidInput):
    """The database could not read a search as its query syntax (whatever the parser let through)."""


class AuthenticationFailed(DomainError):
    default_detail = "Invalid credentials."


class PermissionDenied(DomainError):
    default_detail = "You are not allowed to do this."


class NotFound(DomainError):
    default_detail = "The resource was not found."


class Conflict(DomainError):
    default_detail = "The request conflicts with the current state of the resource."


class TooManyAttempts(DomainError):
    default_detail = "Too many attempts. Try again later."

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class PreconditionFailed(DomainError):
    """The client's copy (`If-Match`, or an admin page's version) is no longer current."""

    default_detail = ("The resource has changed since you read it (If-Match no longer matches). "
                      "Read it again, then retry your change.")


class PreconditionRequired(DomainError):
    default_detail = "This server requires an If-Match header on changes: read the resource first."


class RequestInProgress(Conflict):
    """A request with the same idempotency key has not finished yet."""

    default_detail = "A request with this Idempotency-Key is still being processed; retry shortly."


def problem(
    status: int,
    detail: str | None = None,
    *,
    errors: FieldErrors | None = None,
    headers: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Response:
    """Build an RFC 9457 problem response."""
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail or phrase,
    }
    if errors is not None:
        body["errors"] = errors
    if status >= 500:
        trace_id = current_trace_id()
        if trace_id is not None:
            body["trace_id"] = trace_id  # a client's report of the failure leads to its trace
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def current_trace_id() -> str | None:
    """The trace this request belongs to (32 hex digits), or None when it is not traced."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def unauthorized(detail: str, error: str = "invalid_token") -> Response:
    response = problem(401, detail)
    response.headers["WWW-Authenticate"] = f'Bearer error="{error}"' if error else "Bearer"
    return response


HtmlRenderer = Callable[[int, str, str], Response]


def _render(status: int, detail: str, *, errors: FieldErrors | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
    if faces.is_admin():
        renderer: HtmlRenderer | None = current_app.extensions.get("html_error_renderer")
        title = HTTPStatus(status).phrase
        if renderer is not None:
            response = renderer(status, title, detail)
        else:
            response = Response(
                f"<!doctype html><title>{status} {escape(title)}</title>"
                f"<h1>{escape(title)}</h1><p>{escape(detail)}</p>",
                status=status, mimetype="text/html",
            )
        for key, value in (headers or {}).items():
            response.headers[key] = value
        return response
    return problem(status, detail, errors=errors, headers=headers)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    headers: dict[str, str] = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    for key, value in error.get_headers():
        if key.lower() in ("retry-after", "allow", "www-authenticate"):
            headers[key] = value
    data = getattr(error, "data", None) or {}
    errors = None
    if status == 422:
        errors = _flatten_webargs_messages(data.get("messages"))
    detail = error.description if isinstance(error.description, str) else None
    if errors is not None:
        detail = "The request contains invalid fields."
    if status == 429:
        # Flask-Limiter adds the exact Retry-After (and X-RateLimit-*) after this.
        detail = f"Too many requests: the limit is {error.description}. Try again later."
    if isinstance(error, RequestEntityTooLarge) and request.max_content_length is not None:
        detail = (f"The body is larger than the limit of {binary_size(request.max_content_length)}: "
                  "send less at a time.")
    if request.url_rule is None and isinstance(error, NoRoute):  # no route matched the path
        redirect = _redirect_without_trailing_slash()
        if redirect is not None:
            return redirect
        detail = _no_route_detail() or detail
    if request.url_rule is None and isinstance(error, MethodNotAllowed) and error.valid_methods:
        detail = _wrong_method_detail(error.valid_methods)
    return _render(status, detail or HTTPStatus(status).phrase, errors=errors, headers=headers)


def binary_size(size: int) -> str:
    """A byte count as people write limits: `1 MiB`, `512 KiB`, `200 bytes`."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


# ---- where a client should have gone (404 and 405 of the routing) ----------------------------

STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WRONG_METHOD_HINTS = "wrong_method_hints"  # the attribute `hint_wrong_methods` sets on a view


def hint_wrong_methods(**hints: str) -> Callable[[F], F]:
    """Say, in a 405 of the view's URL, what to do instead of the method named (`PATCH="..."`).
    Put it right under the route decorator."""

    def decorator(view: F) -> F:
        setattr(view, WRONG_METHOD_HINTS, hints)
        return view

    return decorator


def _route_at(path: str, method: str) -> tuple[Rule, str] | None:
    """The rule that answers `method` on `path`, and the URL it builds (the canonical form of
    `path`, never the request's own text), or None when no rule does."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        rule, values = adapter.match(path, method=method, return_rule=True)
    except HTTPException:  # NotFound, MethodNotAllowed, or a RequestRedirect to another path
        return None
    return rule, adapter.build(rule.endpoint, values, method=method)


def _methods_at(path: str) -> list[str]:
    """The methods some rule answers on `path`."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    return sorted(adapter.allowed_methods(path))


def _redirect_without_trailing_slash() -> Response | None:
    """A GET or HEAD of a route's URL with a trailing slash goes to the URL without it (308,
    the query kept); a write is not redirected (`_no_route_detail` names the URL instead)."""
    path = request.path
    if request.method not in ("GET", "HEAD") or len(path) < 2 or not path.endswith("/"):
        return None
    found = _route_at(path.rstrip("/"), request.method)
    if found is None:
        return None
    location = found[1]
    if request.query_string:
        location += "?" + request.query_string.decode("latin-1")
    return Response(status=308, headers={"Location": location})


def _no_route_detail() -> str | None:
    path = request.path
    stripped = path.rstrip("/")
    if len(path) > 1 and stripped != path:
        methods = _methods_at(stripped)
        for method in methods:
            found = _route_at(stripped, method)
            if found is not None:
                if request.method in methods:
                    return f"Nothing is at this URL: use {found[1]}, without the trailing slash."
                return (f"Nothing is at this URL: {found[1]}, without the trailing slash, is a resource, "
                        f"and it allows {', '.join(methods)}.")
    if faces.is_admin():
        return None
    return "Nothing is at this URL. The API's URLs are listed at / and documented at /docs."


def _wrong_method_detail(allowed: list[str] | tuple[str, ...]) -> str:
    method = request.method if request.method in STANDARD_METHODS else "This method"
    detail = f"{method} is not allowed on this URL: it allows {', '.join(sorted(allowed))}."
    for each in sorted(allowed):
        found = _route_at(request.path, each)
        view = current_app.view_functions.get(found[0].endpoint) if found else None
        hint = getattr(view, WRONG_METHOD_HINTS, {}).get(request.method)
        if hint:
            return f"{detail} {hint}"
    if request.method == "PUT" and "PATCH" in allowed:
        return f"{detail} To change it, send PATCH with the fields to change."
    return detail


def _flatten_webargs_messages(messages: Any) -> FieldErrors | None:
    """webargs nests messages by location (`json`, `query`); clients want fields."""
    if not isinstance(messages, Mapping):
        return None
    flat: dict[str, Any] = {}
    for location_messages in messages.values():
        if isinstance(location_messages, Mapping):
            flat.update(location_messages)
    return flat


# The one place where a broken rule becomes an HTTP status; any other DomainError is a 400.
STATUS: dict[type[DomainError], int] = {
    ValidationFailed: 422,
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    PreconditionRequired: 428,
    TooManyAttempts: 429,
}


# The request field each input rule reports on, in problem JSON's `errors`.
FIELD_OF: dict[type[InvalidInput], str] = {
    CurrentPasswordRequired: "current_password",
    WrongCurrentPassword: "current_password",
    InvalidRefreshToken: "refresh_token",
    SelfFollow: "user_id",
    UnreadableSearch: "q",
}


def status_of(error: DomainError) -> int:
    return next((STATUS[kind] for kind in type(error).__mro__ if kind in STATUS), 400)


def handle_domain_error(error: DomainError) -> Response:
    errors = error.errors
    if errors is None and isinstance(error, InvalidInput):
        errors = {FIELD_OF[type(error)]: [error.message]}
    return _render(status_of(error), error.detail, errors=errors, headers=error.headers)


QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE when statement_timeout stops a statement


def handle_database_unavailable(error: Exception) -> Response:
    if getattr(getattr(error, "orig", None), "pgcode", None) == QUERY_CANCELED:
        log.warning("a statement ran past its timeout on %s %s", request.method, request.path)
        return _render(503, "The request took too long and was stopped. Try again shortly, "
                            "or narrow it down (a more specific search).", headers={"Retry-After": "5"})
    log.warning("database unavailable: %s", type(error).__name__)
    return _render(503, "The database is unavailable. Try again shortly.",
                   headers={"Retry-After": OUTAGE_RETRY_AFTER})


def handle_unexpected_error(error: Exception) -> Response:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return handle_database_unavailable(error)
    log.exception("unhandled error on %s %s", escape_controls(request.method), loggable_path(request.path))
    span = trace.get_current_span()  # the request's span; answered here, the exception reaches no instrumentation
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    return _render(500, "An unexpected error occurred. It has been logged.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(PoolTimeoutError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected_error)
