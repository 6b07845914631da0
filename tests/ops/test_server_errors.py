"""What the shipped nginx (deploy/nginx.conf.template, rendered by deploy/render-nginx.sh) answers
itself, in front of an unpatched gunicorn:
requests it cannot read never reach a worker and get problem JSON, and no response names the
server software behind it."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator

import pytest
import requests

from scripts.faults.slow_clients import start_nginx
from tests.helpers import LiveServer

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs Debian's nginx)")


@pytest.fixture(scope="module")
def nginx_port(live_server: LiveServer) -> Iterator[int]:
    process, port, prefix = start_nginx(int(live_server.url.rsplit(":", 1)[1]))
    yield port
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(prefix, ignore_errors=True)


def send_raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


HOST = b"Host: 127.0.0.1\r\n"  # the name the test's nginx serves
BIG = b"X-Big: " + b"a" * 10240 + b"\r\n"


@pytest.mark.parametrize(("request_bytes", "status", "title"), [
    (b"garbage\r\n\r\n", 400, "Bad Request"),
    (b"GET /api/posts HTTP/1.1\r\n\r\n", 400, "Bad Request"),
    (b"GET /api/posts HTTP/1.1\r\n" + HOST + b"Bad Header: x\r\n\r\n", 400, "Bad Request"),
    (b"GET /api/posts?q=" + b"a" * 9000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414, "URI Too Long"),
    (b"GET /api/posts HTTP/1.1\r\n" + HOST + BIG + b"\r\n", 431, "Request Header Fields Too Large"),
    (b"GET /api/posts HTTP/1.1\r\n" + BIG + HOST + b"\r\n", 431, "Request Header Fields Too Large"),
], ids=["garbage-request-line", "no-host", "malformed-header", "request-line-too-long", "10-KiB-header",
        "10-KiB-header-before-host"])
def test_nginx_answers_requests_it_cannot_read_as_problem_json(nginx_port, request_bytes, status, title):
    got, headers, body = send_raw(nginx_port, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/problem+json"
    assert "x-request-id" not in headers  # the app never saw it: it marks every response it makes
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] == title and problem["type"] == "about:blank"
    assert problem["detail"]


def test_no_response_names_the_server_software(nginx_port):
    for path in ("/health", "/api/posts", "/api/nope"):
        response = requests.get(f"http://127.0.0.1:{nginx_port}{path}", timeout=10)
        assert "X-Request-ID" in response.headers, path  # answered by the app, through nginx
        assert response.headers["Server"] == "nginx", (path, response.headers["Server"])  # no version, no gunicorn
        assert "Date" in response.headers
