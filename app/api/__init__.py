"""The REST API: thin blueprints that parse, call a service and shape the response."""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import Response, json
from marshmallow import missing
from webargs.flaskparser import FlaskParser

from app.jsonbody import json_body


class StrictParser(FlaskParser):
    """webargs' Flask parser with `app.jsonbody`'s strict rules for JSON bodies."""

    def load_json(self, req: Any, schema: Any) -> Any:
        body = json_body()
        return missing if body is None else body


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response from already-shaped data (the schema has dumped it)."""
    return Response(json.dumps(data), status=status, headers=headers, mimetype="application/json")
