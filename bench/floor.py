"""The floors: what the app does with nothing but psycopg2 and the standard library.

- `GET /api/posts?limit=N`: same SQL statement as the app's, same JSON bytes,
  same `Link` header.
- `GET /api/users/me`: the same bearer token checked (HS256 signature, expiry,
  type), the same one statement resolving it (session alive, account active), the
  account as the same JSON object.

No framework, no ORM, no schema. What the app does above this is its overhead.
Served by gunicorn with the app's own gunicorn.conf.py:

    DATABASE_URL=postgresql://... gunicorn -c gunicorn.conf.py bench.floor:app
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

import psycopg2

# The statement the app's service runs for the first page (see app/services/posts.py).
SQL = (
    "SELECT posts.id, posts.title, posts.body, posts.created_at, posts.updated_at, "
    "users.id AS author_id, users.name AS author_name "
    "FROM posts JOIN users ON users.id = posts.author_id "
    "ORDER BY posts.created_at DESC, posts.id DESC LIMIT %(limit)s"
)
# The statement the app runs to resolve a bearer token (app/services/sessions.py).
ME_SQL = (
    "SELECT users.id, users.email, users.name, users.age, users.password_hash, users.role, users.is_active, "
    "users.email_verified, users.created_at, users.updated_at, sessions.kind = %(kind)s::VARCHAR AND "
    "sessions.ended_at IS NULL AND sessions.expires_at > %(at)s::TIMESTAMP WITH TIME ZONE AS alive, "
    "users.followers_count, users.following_count "
    "FROM users LEFT OUTER JOIN sessions ON sessions.id = %(session_id)s::VARCHAR AND sessions.user_id = users.id "
    "WHERE users.id = %(user_id)s"
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


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _claims(environ) -> dict | None:
    """The verified claims of the bearer access token, or None (HS256, as the app signs them)."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(os.environ["JWT_SECRET_KEY"].encode(), f"{header}.{payload}".encode(),
                            hashlib.sha256).digest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(expected, _b64decode(signature)):
            return None
        claims = json.loads(_b64decode(payload))
    except ValueError:
        return None
    if claims.get("type") != "access" or claims.get("exp", 0) <= time.time() or not str(claims.get("sub")).isdigit():
        return None
    return claims


def _respond(start_response, status: str, payload) -> list[bytes]:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"  # as Flask's jsonify
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def me(environ, start_response):
    global _connection
    claims = _claims(environ)
    if claims is None:
        return _respond(start_response, "401 Unauthorized", {"status": 401})
    user_id = int(claims["sub"])
    parameters = {"kind": "api", "at": datetime.now(UTC), "session_id": claims.get("sid"), "user_id": user_id}
    try:
        cursor = _cursor()
        cursor.execute(ME_SQL, parameters)
        row = cursor.fetchone()
    except psycopg2.Error:
        _connection = None
        raise
    if row is None or not row[10] or not row[6]:
        return _respond(start_response, "401 Unauthorized", {"status": 401})
    account = {"id": row[0], "email": row[1], "name": row[2], "age": row[3], "role": row[5], "is_active": row[6],
               "email_verified": row[7], "created_at": row[8].isoformat(), "updated_at": row[9].isoformat(),
               "followers_count": row[11], "following_count": row[12]}
    return _respond(start_response, "200 OK", account)


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/api/users/me" and environ.get("REQUEST_METHOD") == "GET":
        return me(environ, start_response)
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
    body = json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"  # as Flask's jsonify
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if len(rows) > limit:
        last = rows[limit - 1]
        params = [(k, v) for k, v in query if k not in ("cursor", "skip")]
        params.append(("cursor", _cursor_for(last[3], last[0])))
        base = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', 'localhost')}"
        headers.append(("Link", f'<{base}/api/posts?{urlencode(params)}>; rel="next"'))
    start_response("200 OK", headers)
    return [body]
