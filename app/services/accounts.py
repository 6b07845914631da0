"""Account recovery and email verification by mail (the links: `app.services.links`).

A reset token names the account and a fingerprint of its password hash and
email, so it stops working once the password (or the email) changes: using it changes
the password, which makes it single-use. A verification token names the account and
the address it was sent to, so it cannot verify an address the account no longer has.

Every change that needs a message is written in the request's transaction, and the message
queued in the same transaction (app/mail.py): both commit or neither, and no request waits
for a mail server.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import current_app
from sqlalchemy.orm.exc import StaleDataError

from app import mail
from app.extensions import db
from app.models import User
from app.security import hash_password
from app.services import flush, sessions, throttle, users
from app.services.links import (
    RESET_PATH,
    RESET_SALT,
    VERIFY_SALT,
    InvalidLinkToken,
    load,
    send_verification,
    serializer,
)
from app.services.sessions import EndReason


def _fingerprint(user: User) -> str:
    return hashlib.sha256(f"{user.password_hash}\x00{user.email}".encode()).hexdigest()[:20]


# ---- email verification ------------------------------------------------------------


def register(**fields: Any) -> User:
    """Create an account and queue its verification link; neither happens without the other."""
    user = users.register(**fields)
    send_verification(user)
    return user


def verify_email(token: Any) -> User:
    data = load(VERIFY_SALT, token, current_app.config["EMAIL_VERIFICATION_HOURS"] * 3600)
    user = db.session.get(User, data["u"])
    if user is None or not user.is_active or user.email != data.get("e"):
        raise InvalidLinkToken()
    if not user.email_verified:
        user.email_verified = True
        flush()
    return user


def resend_verification(user: User) -> None:
    """Mail a new link, within the account's and the address's mail budget; none once verified."""
    if user.email_verified:
        return
    throttle.spend_on_mail(user.id, user.email)
    send_verification(user)


# ---- password reset ----------------------------------------------------------------


def request_password_reset(email: str) -> None:
    """Queue a reset link if an active account has this email; say nothing either way.

    Neither case does any network work (the worker sends the message later), so the time
    taken does not tell whether the email has an account."""
    user = users.find_by_email(email)
    if user is None or not user.is_active:
        return
    token = serializer(RESET_SALT).dumps({"u": user.id, "f": _fingerprint(user)})
    mail.enqueue(user.email, "Reset your password", "reset_password", user=user,
                 link=mail.link(RESET_PATH, token=token), minutes=current_app.config["PASSWORD_RESET_MINUTES"])


def confirm_password_reset(token: Any, password: str) -> User:
    """Set the new password, end every session, and count the mailbox as verified."""
    data = load(RESET_SALT, token, current_app.config["PASSWORD_RESET_MINUTES"] * 60)
    user = db.session.get(User, data["u"])
    if user is None or not user.is_active or data.get("f") != _fingerprint(user):
        raise InvalidLinkToken()
    user.password_hash = hash_password(password)
    user.email_verified = True  # the link reached this mailbox
    try:
        # Two uses of one link at once: the row's version lets exactly one of them write.
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise InvalidLinkToken() from None
    sessions.end_all_of(user.id, EndReason.PASSWORD)
    throttle.forget_devices(user.id)  # device tokens end, and the guessing budgets start afresh
    return user


def check_reset_token(token: Any) -> None:
    """Raise InvalidLinkToken unless the token could still reset a password (for the reset page)."""
    data = load(RESET_SALT, token, current_app.config["PASSWORD_RESET_MINUTES"] * 60)
    user = db.session.get(User, data["u"])
    if user is None or not user.is_active or data.get("f") != _fingerprint(user):
        raise InvalidLinkToken()

