"""Account recovery and email verification by mail.

Links carry signed, expiring tokens (itsdangerous, keyed by `SECRET_KEY`); nothing is
stored. A reset token names the account and a fingerprint of its password hash and
email, so it stops working once the password (or the email) changes: using it changes
the password, which makes it single-use. A verification token names the account and
the address it was sent to, so it cannot verify an address the account no longer has.

Every change that needs a message is written in the same transaction that sends it:
a mail server that does not take the message rolls the change back (MailUnavailable).
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer

from app import mail
from app.errors import DomainError, MailUnavailable
from app.extensions import db
from app.models import User
from app.security import hash_password
from app.services import sessions, throttle
from app.services.sessions import EndReason

MAX_PADDING_SECONDS = 2.0
_recent_sends: deque[float] = deque(maxlen=31)  # seconds per reset request that sent a message

RESET_SALT = "password-reset"
VERIFY_SALT = "verify-email"
RESET_PATH = "/reset-password"
VERIFY_PATH = "/verify-email"


class InvalidLinkToken(DomainError):
    default_detail = "This link is invalid, expired or already used. Ask for a new one."


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _fingerprint(user: User) -> str:
    return hashlib.sha256(f"{user.password_hash}\x00{user.email}".encode()).hexdigest()[:20]


def _load(salt: str, token: Any, max_age: int) -> dict:
    if not isinstance(token, str) or not token or len(token) > 1024:
        raise InvalidLinkToken()
    try:
        data = _serializer(salt).loads(token, max_age=max_age)
    except (BadData, UnicodeError, ValueError):
        raise InvalidLinkToken() from None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        raise InvalidLinkToken()
    return data


def _send_or_roll_back(send: Callable[[], None]) -> None:
    """Commit only once the message was taken: no half-made change without its email."""
    try:
        send()
    except MailUnavailable:
        db.session.rollback()
        raise
    db.session.commit()


# ---- email verification ------------------------------------------------------------


def send_verification(user: User) -> None:
    """Mail a verification link for the user's current email (part of the caller's transaction)."""
    token = _serializer(VERIFY_SALT).dumps({"u": user.id, "e": user.email})
    mail.send(user.email, "Confirm your email address", "verify_email", user=user,
              link=mail.link(VERIFY_PATH, token=token),
              hours=current_app.config["EMAIL_VERIFICATION_HOURS"])


def register(**fields: Any) -> User:
    """Create an account and mail its verification link; neither happens without the other."""
    from app.services import users

    user = users.register(**fields, flush_only=True)
    _send_or_roll_back(lambda: send_verification(user))
    return user


def verify_email(token: Any) -> User:
    data = _load(VERIFY_SALT, token, current_app.config["EMAIL_VERIFICATION_HOURS"] * 3600)
    user = db.session.get(User, data["u"])
    if user is None or not user.is_active or user.email != data.get("e"):
        raise InvalidLinkToken()
    if not user.email_verified:
        user.email_verified = True
        db.session.commit()
    return user


def resend_verification(user: User) -> None:
    """Mail a new link, within the account's and the address's mail budget; none once verified."""
    if user.email_verified:
        return
    throttle.spend_on_mail(user.id, user.email)
    send_verification(user)


# ---- password reset ----------------------------------------------------------------


def request_password_reset(email: str) -> None:
    """Mail a reset link if an active account has this email; say nothing either way.

    For an unknown email the mail server is still contacted, so an outage (503) looks
    the same, and the answer waits as long as this process's recent real sends took,
    so the time taken does not tell either."""
    from app.services import users

    started = time.perf_counter()
    user = users.find_by_email(email)
    if user is None or not user.is_active:
        mail.probe()
        if _recent_sends:
            time.sleep(max(0.0, statistics.median(_recent_sends) - (time.perf_counter() - started)))
        return
    token = _serializer(RESET_SALT).dumps({"u": user.id, "f": _fingerprint(user)})
    mail.send(user.email, "Reset your password", "reset_password", user=user,
              link=mail.link(RESET_PATH, token=token), minutes=current_app.config["PASSWORD_RESET_MINUTES"])
    _recent_sends.append(min(time.perf_counter() - started, MAX_PADDING_SECONDS))


def confirm_password_reset(token: Any, password: str) -> User:
    """Set the new password, end every session, and count the mailbox as verified."""
    data = _load(RESET_SALT, token, current_app.config["PASSWORD_RESET_MINUTES"] * 60)
    user = db.session.get(User, data["u"])
    if user is None or not user.is_active or data.get("f") != _fingerprint(user):
        raise InvalidLinkToken()
    user.password_hash = hash_password(password)
    user.email_verified = True  # the link reached this mailbox
    sessions.end_all_of(user.id, EndReason.PASSWORD)
    throttle.forget_devices(user.id)  # device tokens end, and the guessing budgets start afresh
    db.session.commit()
    return user


def check_reset_token(token: Any) -> None:
    """Raise InvalidLinkToken unless the token could still reset a password (for the reset page)."""
    data = _load(RESET_SALT, token, current_app.config["PASSWORD_RESET_MINUTES"] * 60)
    user = db.session.get(User, data["u"])
    if user is None or not user.is_active or data.get("f") != _fingerprint(user):
        raise InvalidLinkToken()

