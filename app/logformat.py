"""Log lines nobody can forge through a request: text with control characters escaped, or JSON.

A path such as `/api/posts%0a2026-12-01 ... INFO app.request POST ...` decodes to
a line break; written as is, it starts a second, fake log line. `LOG_FORMAT=text`
(the default) escapes every control character in the line; `LOG_FORMAT=json`
writes one JSON object per line, for log shippers.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from urllib.parse import quote

# C0, DEL, C1, the Unicode line and paragraph separators, and the backslash that marks an escape.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("text", "json")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape_controls(text: str) -> str:
    """The text on one line: `\\n` becomes the four characters `\\x0a`, a backslash two."""
    return _UNSAFE.sub(_escape, text)


def trace_ids(record: logging.LogRecord) -> tuple[str, str] | None:
    """The trace and span the record was written in (`otelTraceID`, `otelSpanID`, which the
    OpenTelemetry logging instrumentation adds when tracing is on), or None."""
    trace_id = getattr(record, "otelTraceID", None)
    if trace_id is None or trace_id == "0":
        return None
    return trace_id, record.otelSpanID  # type: ignore[attr-defined]


class TextFormatter(logging.Formatter):
    """The usual line, control characters escaped; a traceback still follows on its own lines.
    A line written in a traced request ends with its `trace_id=... span_id=...`."""

    def __init__(self, fmt: str = TEXT_FORMAT, *args, **kwargs) -> None:
        super().__init__(fmt, *args, **kwargs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = escape_controls(super().formatMessage(record))
        ids = trace_ids(record)
        return line if ids is None else f"{line} trace_id={ids[0]} span_id={ids[1]}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        ids = trace_ids(record)
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True, default=str)


_LOGGABLE_AS_IS = re.compile(r"[A-Za-z0-9_.~/!$&'()*+,;=:@-]*")


def loggable_path(path: str) -> str:
    """A request path as it would be sent: percent-encoded, one token without controls or spaces.
    Most paths are already that, and are returned without `quote`'s pass over every character."""
    if _LOGGABLE_AS_IS.fullmatch(path):
        return path
    return quote(path, safe="/!$&'()*+,;=:@~")


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()
