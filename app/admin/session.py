"""Who is signed in to the admin: a server-side session named in Flask's signed cookie.

The cookie carries only the id of a `sessions` row (kind `admin`). Every request
resolves it with one statement that also loads the account, so logout, a password
change, a demotion, a deactivation or "End all sessions" end it at the next click,
on every worker and host. The row expires `ADMIN_SESSION_MAX_HOURS` after sign-in
whatever the activity; the cookie itself also lapses after `ADMIN_SESSION_HOURS`
idle (Flask rejects older signatures). Bearer tokens play no part here, and this
cookie plays none in the API.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app, session

from app.database import note_reader
from app.models import SessionKind, User
from app.services import flush, sessions
from app.services.sessions import EndReason

SESSION_KEY = "admin_session_id"
SESSION_ID_LENGTH = 32


def sign_in(user: User) -> None:
    """Start a fresh session (a new CSRF token too), so no pre-login value survives."""
    lifetime = timedelta(hours=current_app.config["ADMIN_SESSION_MAX_HOURS"])
    row = sessions.start(user, SessionKind.ADMIN, lifetime)
    flush()  # its id goes into the cookie; the request commits it
    session.clear()
    session[SESSION_KEY] = row.id
    session.permanent = True
    note_reader(user.id)


def sign_out() -> None:
    session_id = _session_id()
    if session_id is not None:
        sessions.end([session_id], EndReason.LOGOUT)
    session.clear()


def _session_id() -> str | None:
    value = session.get(SESSION_KEY)
    if isinstance(value, str) and len(value) == SESSION_ID_LENGTH and value.isascii() and value.isalnum():
        return value
    return None


def signed_in_admin() -> User | None:
    """The active admin of this session; an ended session or anyone else ends it in the browser too."""
    if SESSION_KEY not in session:
        return None
    session_id = _session_id()
    found = sessions.resolve(session_id, None, SessionKind.ADMIN) if session_id else None
    user = found.user if found is not None else None
    if user is None or not found.alive or not user.is_active or not user.is_admin:
        session.clear()
        return None
    return user


def safe_next(target: str | None, default: str) -> str:
    """Where to go after a form: only a path inside the admin, never another site."""
    if not target:
        return default
    parts = urlsplit(target)
    unsafe = parts.scheme or parts.netloc or "\\" in target or any(ord(c) < 32 for c in target)
    if unsafe or not target.startswith("/admin"):
        return default
    if target != "/admin" and not target.startswith(("/admin/", "/admin?")):
        return default
    return target
