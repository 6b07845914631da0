"""gunicorn's sync worker, answering gunicorn's own errors as RFC 9457 problem JSON.

gunicorn answers a request it cannot parse (a garbage request line: 400; a request
line over `limit_request_line`: 414; header fields over their limits: 431) itself,
before the app sees it, with an HTML page. It has no setting for that page: its
workers call `gunicorn.util.write_error`. This worker class (gunicorn's
`worker_class` setting) replaces that function in its own process, so those
answers look like every other error of the API.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util
from gunicorn.workers.sync import SyncWorker


def write_problem(sock: socket.socket, status: int, reason: str, message: str) -> None:
    """What `gunicorn.util.write_error` sends, as `application/problem+json`."""
    body = json.dumps({
        "type": "about:blank",
        "title": reason,
        "status": status,
        "detail": message or reason,
    }, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\n"
            "Connection: close\r\n"
            "Content-Type: application/problem+json\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "Cache-Control: no-store\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class ProblemJsonSyncWorker(SyncWorker):
    def init_process(self) -> None:
        util.write_error = write_problem  # this worker process only
        super().init_process()
