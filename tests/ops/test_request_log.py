"""The request log cannot be forged through a request, in text or in JSON (`LOG_FORMAT=json`).

Through a real gunicorn: what it writes to stderr is what an operator reads.
"""

from __future__ import annotations

import json
import logging
import random
import string
import time
from urllib.parse import quote

import pytest
import requests

from app.logformat import JsonFormatter, TextFormatter, loggable_path
from tests.helpers import start_gunicorn

FAKE_LINE = "2031-12-01 07:00:00,000 INFO app.request POST /api/users/1 204 0.1ms id=forged"
FORGING_PATH = "/api/posts%0a" + FAKE_LINE.replace(" ", "%20") + "%0d%0a%1b[31m%e2%80%a8x"


def _logged(server, marker: str) -> str:
    deadline = time.monotonic() + 10
    while marker not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.output()


@pytest.fixture(params=["text", "json"])
def logging_server(request, app, database_url):
    server = start_gunicorn(database_url, workers=1, env={"LOG_LEVEL": "INFO", "LOG_FORMAT": request.param})
    yield request.param, server
    server.stop()


def test_a_path_with_line_breaks_writes_one_line(logging_server):
    log_format, server = logging_server
    response = requests.get(server.url + FORGING_PATH, headers={"X-Request-ID": "forge-1"}, timeout=5)
    assert response.status_code == 404
    output = _logged(server, "forge-1")
    assert not any(line.startswith("2031-12-01") for line in output.splitlines()), output
    request_lines = [line for line in output.splitlines() if "forge-1" in line]
    assert len(request_lines) == 1, output
    line = request_lines[0]
    assert "\x1b" not in line and "\r" not in line and "\u2028" not in line
    if log_format == "json":
        entry = json.loads(line)
        assert entry["logger"] == "app.request" and entry["status"] == 404 and entry["request_id"] == "forge-1"
        assert entry["method"] == "GET" and entry["path"].startswith("/api/posts%0A2031-12-01")
    else:
        assert " GET /api/posts%0A2031-12-01%2007:00:00,000%20INFO" in line


@pytest.mark.parametrize("logging_server", ["json"], indirect=True)
def test_json_logs_are_one_object_per_line(logging_server):
    _, server = logging_server
    requests.get(server.url + "/health", headers={"X-Request-ID": "json-2"}, timeout=5)
    output = _logged(server, "json-2")
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line, gunicorn's too
    assert any(e.get("path") == "/health" and e.get("request_id") == "json-2" for e in entries)
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)


def test_text_formatter_escapes_controls_in_any_message():
    record = logging.LogRecord("app.errors", logging.ERROR, __file__, 1, "bad %s", ("a\nb\\c\x85",), None)
    assert TextFormatter().format(record).endswith("bad a\\x0ab\\\\c\\x85")
    assert json.loads(JsonFormatter().format(record))["message"] == "bad a\nb\\c\x85"


def test_an_unknown_log_format_is_refused():
    from app import create_app
    from config import ConfigurationError

    with pytest.raises(ConfigurationError, match="LOG_FORMAT"):
        create_app({"APP_ENV": "testing", "LOG_FORMAT": "xml"})


def test_a_logged_path_is_what_percent_encoding_makes_of_it():
    """`loggable_path` skips `quote` for paths that need no quoting; it must give what `quote` gives."""
    generator = random.Random(20261206)
    alphabet = string.printable + "é€\u2028\x00\x7f%/"
    paths = ["", "/", "/api/posts/1", "/api/posts%0a", "/a b", "/ünïcode", "/~user/x;y=1@z"]
    paths += ["".join(generator.choices(alphabet, k=generator.randint(0, 16))) for _ in range(20_000)]
    for path in paths:
        assert loggable_path(path) == quote(path, safe="/!$&'()*+,;=:@~"), path


@pytest.mark.parametrize("logging_server", ["text"], indirect=True)
def test_gunicorn_writes_its_own_lines_in_text_with_its_process_id(logging_server):
    """gunicorn's own format names the process (`[%(process)d]`): its boot and worker lines print,
    rather than a logging error with a traceback each, as `make run` shows them."""
    _, server = logging_server
    output = _logged(server, "Booting worker")
    assert "Logging error" not in output, output
    assert f"[{server.process.pid}] [INFO] Listening at: http://127.0.0.1:" in output, output
