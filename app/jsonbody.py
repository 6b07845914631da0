"""Strict JSON request bodies.

Flask's parser accepts `NaN` and `Infinity` and turns a body nested 100,000
levels deep into a RecursionError (a 500). Here: a non-JSON body is a 415,
malformed or too deep JSON a 400, and non-finite numbers reach the schema as
values no field accepts, so the 422 names the field.
"""

from __future__ import annotations

import json
from typing import Any

from flask import g, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

_MISSING = object()


class NonFiniteNumber:
    """Stands in for `NaN`/`Infinity`; no marshmallow field will deserialize it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=NonFiniteNumber)
    except RecursionError:
        raise BadRequest("The JSON body is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"The body is not valid JSON: {error}.") from None


def json_body(*, silent: bool = False) -> Any:
    """The request's JSON body, parsed once per request; `None` for an empty body."""
    cached = g.get("_json_body", _MISSING)
    if cached is not _MISSING:
        return cached
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(raw) >= limit:
        # A chunked body is cut off at the limit, not refused: refuse it here.
        raise RequestEntityTooLarge()
    if not raw:
        body = None
    elif not request.is_json:
        if silent:
            return None
        raise UnsupportedMediaType("The body must be JSON, sent as Content-Type: application/json.")
    else:
        try:
            body = _parse(raw)
        except BadRequest:
            if silent:
                return None
            raise
    g._json_body = body
    return body
