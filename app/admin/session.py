"""Who is signed in to the admin: a user id in Flask's signed session cookie.

The cookie is only an id. The account is loaded again on every request, so an
admin who is deactivated or demoted is signed out at their next click. The
session is permanent with a lifetime of `ADMIN_SESSION_HOURS`, refreshed on
each request, so it ends after that long idle (Flask rejects older signatures).
Bearer tokens play no part here, and this cookie plays none in the API.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import session

from app.database import note_reader
from app.extensions import db
from app.models import User

SESSION_KEY = "admin_user_id"


def sign_in(user: User) -> None:
    """Start a fresh session (a new CSRF token too), so no pre-login value survives."""
    session.clear()
    session[SESSION_KEY] = user.id
    session.permanent = True
    note_reader(user.id)


def sign_out() -> None:
    session.clear()


def signed_in_admin() -> User | None:
    """The active admin of this session; anyone else ends the session."""
    user_id = session.get(SESSION_KEY)
    if user_id is None:
        return None
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.is_active or not user.is_admin:
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
