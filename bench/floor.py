"""The floor: the first-page list with nothing but psycopg2 and the standard library.

Same SQL statement as the app's `GET /api/posts?limit=N`, same JSON bytes,
same `Link` header; no framework, no ORM, no schema. What the app does above
this is its overhead. Served by gunicorn with the app's own gunicorn.conf.py:

    DATABASE_URL=postgresql://... gunicorn -c gunicorn.conf.py bench.floor:app
"""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import parse_qsl, urlencode

import psycopg2

# The statement the app's service runs for the first page (see app/services/posts.py).
SQL = (
    "SELECT posts.id, posts.title, posts.body, posts.created_at, posts.updated_at, "
    "users.id AS author_id, users.name AS author_name "
    "FROM posts JOIN users ON users.id = posts.author_id "
    "ORDER BY posts.created_at DESC, posts.id DESC LIMIT %(limit)s"
)
_connection = None


def _cursor():
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg2.connect(os.environ["DATABASE_URL"])
        _connection.autocommit = True
    return _connection.cursor()


def _cursor_for(created_at, post_id) -> str:
    raw = json.dumps([created_at.isoformat(), post_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def app(environ, start_response):
    if environ.get("PATH_INFO") != "/api/posts" or environ.get("REQUEST_METHOD") != "GET":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    query = parse_qsl(environ.get("QUERY_STRING", ""))
    try:
        limit = int(dict(query).get("limit", 20))
        if not 1 <= limit <= 100:
            raise ValueError
    except ValueError:
        start_response("422 Unprocessable Content", [("Content-Type", "text/plain")])
        return [b"bad limit"]
    try:
        cursor = _cursor()
        cursor.execute(SQL, {"limit": limit + 1})
        rows = cursor.fetchall()
    except psycopg2.Error:
        global _connection
        _connection = None
        raise
    items = [
        {
            "id": r[0],
            "title": r[1],
            "body": r[2],
            "author": {"id": r[5], "name": r[6]},
            "created_at": r[3].isoformat(),
            "updated_at": r[4].isoformat(),
        }
        for r in rows[:limit]
    ]
    body = json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode()  # the app's compact UTF-8
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if len(rows) > limit:
        last = rows[limit - 1]
        params = [(k, v) for k, v in query if k not in ("cursor", "skip")]
        params.append(("cursor", _cursor_for(last[3], last[0])))
        base = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', 'localhost')}"
        headers.append(("Link", f'<{base}/api/posts?{urlencode(params)}>; rel="next"'))
    start_response("200 OK", headers)
    return [body]
