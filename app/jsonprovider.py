"""Flask's JSON output, written by orjson.

Encoding a page of posts with the standard library was the largest single cost
left in a list request after the database, in the profile. Output
is compact UTF-8; dates and datetimes are ISO 8601, as marshmallow writes them, so
a view may hand over a datetime rather than format it itself. Input is still read
by the standard library, under app/jsonbody.py's strict rules.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_NON_STR_KEYS  # marshmallow keys list errors by index, as ints
_COMPACT = {"separators": (",", ":")}


def _default(value: Any) -> Any:
    if isinstance(value, date):  # reached only on the fallback path: orjson knows dates
        return value.isoformat()
    return DefaultJSONProvider.default(value)


class JSONProvider(DefaultJSONProvider):
    default = staticmethod(_default)
    sort_keys = False  # keep the schemas' field order

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Compact output (what `response` asks for outside debug mode) by orjson; the
        standard library's other options (an indent for people) by the standard library."""
        if kwargs and kwargs != _COMPACT:
            return super().dumps(obj, **kwargs)
        return self._dumps_bytes(obj).decode()

    def _dumps_bytes(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, default=_default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # What orjson refuses and the standard library writes: integers beyond 64 bits,
            # lone surrogates (escaped, as client input echoed in an error may hold them).
            return super().dumps(obj, separators=(",", ":")).encode()
