"""One log line per request: method, path, status, duration and a request id.

An incoming `X-Request-ID` is honoured (if it looks sane) and echoed back. The
path is logged percent-encoded and the method escaped, so that no request can
write a line break (or a field) of its own into the log, whatever the formatter.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time

from flask import Flask, Response, g, request

from app.logformat import escape_controls, formatter, loggable_path

log = logging.getLogger("app.request")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def init_app(app: Flask) -> None:
    root = logging.getLogger()
    if not root.handlers:  # else whoever configured logging (gunicorn.conf.py, a test runner) decides
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter(app.config["LOG_FORMAT"]))
        root.addHandler(handler)
        root.setLevel(app.config["LOG_LEVEL"])
    log.setLevel(app.config["LOG_LEVEL"])

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        g.request_id = incoming if _SANE_ID.match(incoming) else secrets.token_hex(16)

    @app.after_request
    def log_request(response: Response) -> Response:
        request_id = g.get("request_id") or secrets.token_hex(16)
        response.headers["X-Request-ID"] = request_id
        if log.isEnabledFor(logging.INFO):
            started = g.get("request_started")
            duration_ms = (time.perf_counter() - started) * 1000 if started else 0.0
            method, path = escape_controls(request.method), loggable_path(request.path)
            log.info("%s %s %s %.1fms id=%s", method, path, response.status_code, duration_ms, request_id,
                     extra={"fields": {"method": method, "path": path, "status": response.status_code,
                                       "duration_ms": round(duration_ms, 1), "request_id": request_id}})
        return response
