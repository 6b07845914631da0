"""The REST API: thin blueprints that parse, call a service and shape the response."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Response, request
from marshmallow import missing
from webargs.flaskparser import FlaskParser

from app.api.conditional import PUBLIC_READ, ConditionalBlueprint
from app.errors import PROBLEM_MIMETYPE, ValidationFailed
from app.jsonbody import json_body
from app.schemas import ProblemSchema

F = TypeVar("F", bound=Callable[..., Any])


def _header(description: str, kind: str = "string", required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": kind}}


# On every response to a request a limit counted: login, refresh, registration, every
# write under /api (and reads when RATELIMIT_READ is set); never required (limits can be off).
BEARER = [{"bearerAuth": []}]  # the OpenAPI security requirement of operations that need a token
PUBLIC: list[dict[str, list[str]]] = []  # ... and of those that need none (a token only changes whose budget counts)
UNTRUSTED_HOST = {"d400": "The `Host` header names no host in `TRUSTED_HOSTS`."}  # any route can answer it
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": _header("Requests allowed in the current window.", "integer"),
    "X-RateLimit-Remaining": _header("Requests left in the current window.", "integer"),
    "X-RateLimit-Reset": _header("Unix time at which the window resets.", "integer"),
}
LINK_HEADER = {"Link": _header('`<url>; rel="next"` when more items exist.')}
LOCATION_HEADER = {"Location": _header("URL of the new resource.", required=True)}
PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": _header("The Bearer challenge.", required=True)},
    405: {"Allow": _header("The methods the resource supports.", required=True)},
    429: {"Retry-After": _header("Seconds until the limit resets.", "integer", required=True),
          **RATE_LIMIT_HEADERS},
    503: {"Retry-After": _header("Seconds to wait before trying again: always 5.", "integer", required=True)},
}
PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON.",
    401: "Missing, invalid, expired or revoked bearer token.",
    403: "Signed in, but not allowed to do this.",
    404: "The resource does not exist.",
    409: "Conflicts with the current state (e.g. the email is taken).",
    413: "The body is larger than the configured limit (1 MiB by default).",
    415: "The body is not JSON.",
    429: ("Rate limit reached; wait `Retry-After` seconds. Anonymous reads count per IP, signed-in reads "
          "per user, and searches (`q`) have a tighter budget of their own."),
    503: "The database is unavailable, or a read ran longer than its timeout; retry after `Retry-After` seconds.",
}


def any_of_response(description: str, *schema_names: str, many: bool = False,
                    headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response whose JSON body is one of several component schemas (by name),
    for answers whose shape depends on who asks. `anyOf`, not `oneOf`: a full object
    also satisfies the smaller schema."""
    schema: dict[str, Any] = {"anyOf": [{"$ref": f"#/components/schemas/{name}"} for name in schema_names]}
    if many:
        schema = {"type": "array", "items": schema}
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


class StrictParser(FlaskParser):
    """webargs' Flask parser with `app.jsonbody`'s strict rules for JSON bodies."""

    def load_json(self, req: Any, schema: Any) -> Any:
        body = json_body()
        if body is None and not req.get_data(cache=True):
            return missing  # no body at all; a JSON `null` goes on to fail the schema
        return body


def cache_policy(response: Response) -> Response:
    """Nothing authenticated, and no write's answer, may sit in a cache; a public read with an
    ETag may, but must revalidate it every time (a 304 when it is current)."""
    if "HTTP_AUTHORIZATION" in request.environ or request.method not in ("GET", "HEAD"):
        response.headers["Cache-Control"] = "no-store"
    elif "ETag" in response.headers:
        response.headers["Cache-Control"] = PUBLIC_READ
    return response


class Blueprint(ConditionalBlueprint):
    """flask-smorest's blueprint with the API's own rules: strict bodies, problem
    responses documented, conditional requests (`etag`, app/api/conditional.py) and
    no caching of personal data."""

    ARGUMENTS_PARSER = StrictParser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after_request(cache_policy)

    def arguments(self, schema: Any, *, location: str = "json", required: bool = True,
                  **kwargs: Any) -> Callable[[F], F]:
        """flask-smorest's `arguments`, where a required body is really required.

        flask-smorest only documents `required`; a body schema without required
        fields (a PATCH) would take a missing body as an empty change.
        """
        decorator = super().arguments(schema, location=location, required=required, **kwargs)
        instance = schema() if isinstance(schema, type) else schema
        if location != "json" or not required or any(f.required for f in instance.fields.values()):
            return decorator

        def wrap(func: F) -> F:
            parsed = decorator(func)

            @wraps(parsed)
            def view(*args: Any, **view_kwargs: Any) -> Any:
                if not request.get_data(cache=True):
                    raise ValidationFailed("A JSON body is required.",
                                           errors={"_schema": ["A JSON body is required."]})
                return parsed(*args, **view_kwargs)

            return view  # type: ignore[return-value]

        return wrap

    def problems(self, *statuses: int, **descriptions: str) -> Callable[[F], F]:
        """Document the RFC 9457 problem responses an operation can answer with.

        `descriptions` override the default text per status, as `d409="..."`.
        """

        def decorator(func: F) -> F:
            for status in statuses:
                description = (descriptions.get(f"d{status}") or PROBLEM_DESCRIPTIONS.get(status)
                               or HTTPStatus(status).phrase)
                func = self.alt_response(status, schema=ProblemSchema, content_type=PROBLEM_MIMETYPE,
                                         description=description, headers=PROBLEM_HEADERS.get(status))(func)
            return func

        return decorator


def _header_parameter(name: str, description: str) -> dict[str, Any]:
    return {"in": "header", "name": name, "required": False, "description": description,
            "schema": {"type": "string"}}


IDEMPOTENCY_KEY = _header_parameter(
    "Idempotency-Key", "A key of your choice (1-255 printable ASCII characters) that makes a retry safe: "
    "a repeat with the same key and body returns the first response, byte for byte, and creates nothing; "
    "keys are kept for `IDEMPOTENCY_TTL_HOURS` (24 h), per caller (user, or client address for "
    "registration).")
IDEMPOTENCY_PROBLEMS = {
    "d400": "Malformed JSON, or an invalid `Idempotency-Key`.",
    "d422": "Invalid fields, or the `Idempotency-Key` was already used with a different body.",
}


def document_header(func: F, parameter: dict[str, Any]) -> F:
    """A request header in the operation's parameters (flask-smorest lists `arguments` there)."""
    docs = func.__dict__.setdefault("_apidoc", {}).setdefault("arguments", {})
    docs.setdefault("parameters", []).append(parameter)
    return func
