"""The REST API: thin blueprints that parse, call a service and shape the response."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus
from typing import Any, TypeVar

import flask_smorest
from flask import Response, request
from marshmallow import missing
from webargs.flaskparser import FlaskParser

from app.api import conditional
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
ETAG_HEADER = {"ETag": _header("Strong validator of this representation: send it back in `If-None-Match` "
                               "(a read) or `If-Match` (a change).", required=True)}
CACHE_HEADERS = {**ETAG_HEADER, "Cache-Control": _header(
    "`no-cache` on public reads (any cache must revalidate), `no-store` on authenticated ones.", required=True)}
LOCATION_HEADER = {"Location": _header("URL of the new resource.", required=True)}
PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": _header("The Bearer challenge.", required=True)},
    405: {"Allow": _header("The methods the resource supports.", required=True)},
    429: {"Retry-After": _header("Seconds until the limit resets.", "integer", required=True),
          **RATE_LIMIT_HEADERS},
    503: {"Retry-After": _header("Seconds to wait before trying again: always 5.", "integer", required=True)},
    412: {"ETag": _header("The current ETag of the resource.")},
}
PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON.",
    401: "Missing, invalid, expired or revoked bearer token.",
    403: "Signed in, but not allowed to do this.",
    404: "The resource does not exist.",
    409: "Conflicts with the current state (e.g. the email is taken).",
    413: "The body is larger than the configured limit (1 MiB by default).",
    415: "The body is not JSON.",
    412: ("`If-Match` names none of the resource's current ETags: it changed since you read it, or the header "
          "holds only weak tags (`W/\"...\"`, which never match) or is malformed; the detail says which. "
          "Nothing changed."),
    428: "`REQUIRE_IF_MATCH` is on and the request has no `If-Match`.",
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


def no_store_for_personal_data(response: Response) -> Response:
    """Nothing authenticated, and no write's answer, may sit in a cache."""
    if "HTTP_AUTHORIZATION" in request.environ or request.method not in ("GET", "HEAD"):
        response.headers["Cache-Control"] = "no-store"
    return response


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint with the API's own rules: strict bodies, problem
    responses documented, and no caching of personal data."""

    ARGUMENTS_PARSER = StrictParser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after_request(no_store_for_personal_data)

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

    def cached(self, func: F) -> F:
        """A read answered conditionally (`conditional.cached`), documented: If-None-Match and
        the 304. Goes above `response`, to tag the response its schema made."""
        return self._document_revalidation(conditional.cached(func))

    def cached_page(self, func: F) -> F:
        """A list page answered conditionally (`conditional.cached_page`: a current copy costs a
        304 without reading the page), documented as `cached`. Goes above `arguments`: the
        tag names the query, so a current copy needs it neither parsed nor read."""
        return self._document_revalidation(conditional.cached_page(func))

    def _document_revalidation(self, func: F) -> F:
        func = self.alt_response(304, description="Not Modified: your copy (`If-None-Match`) is current; "
                                 "no body.", headers=ETAG_HEADER)(func)
        return document_header(func, IF_NONE_MATCH)

    def conditional(self, func: F) -> F:
        """Document a write guarded by `conditional.if_match`: If-Match, 412 and 428."""
        return document_header(self.problems(412, 428)(func), IF_MATCH)


def _header_parameter(name: str, description: str) -> dict[str, Any]:
    return {"in": "header", "name": name, "required": False, "description": description,
            "schema": {"type": "string"}}


IF_NONE_MATCH = _header_parameter(
    "If-None-Match", "ETags of copies you hold (or `*`): when one is current, the answer is 304 without a body.")
IF_MATCH = _header_parameter(
    "If-Match", "Change only if the resource still has one of these ETags (`*`: if it exists); else 412.")
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
