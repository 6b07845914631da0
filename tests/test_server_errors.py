"""Errors gunicorn answers itself, before the app sees the request, are problem JSON too."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from tests.helpers import LiveServer


def send_raw(server: LiveServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(("request_bytes", "status", "title"), [
    (b"garbage\r\n\r\n", 400, "Bad Request"),
    (b"GET /api/posts?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 414, "URI Too Long"),
    (b"GET /api/posts HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 10240 + b"\r\n\r\n", 431,
     "Request Header Fields Too Large"),
    (b"GET /api/posts HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(120))
     + b"\r\n", 431, "Request Header Fields Too Large"),
], ids=["garbage-request-line", "request-line-too-long", "10-KiB-header", "too-many-headers"])
def test_gunicorns_own_errors_are_problem_json(live_server, request_bytes, status, title):
    got, headers, body = send_raw(live_server, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] == title and problem["type"] == "about:blank"
    assert problem["detail"]
