"""The signed links mailed to an account's owner, and the verification message.

Links carry signed, expiring tokens (itsdangerous, keyed by `SECRET_KEY`); nothing is stored.
Both `accounts` (recovery, verification) and `users` (a new email must be verified) send them,
so they live here, below both.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer

from app import mail
from app.errors import DomainError
from app.models import User

RESET_SALT = "password-reset"
VERIFY_SALT = "verify-email"
RESET_PATH = "/reset-password"
VERIFY_PATH = "/verify-email"


class InvalidLinkToken(DomainError):
    default_detail = "This link is invalid, expired or already used. Ask for a new one."


def serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def load(salt: str, token: Any, max_age: int) -> dict:
    """The data of a link's token, or InvalidLinkToken."""
    if not isinstance(token, str) or not token or len(token) > 1024:
        raise InvalidLinkToken()
    try:
        data = serializer(salt).loads(token, max_age=max_age)
    except (BadData, UnicodeError, ValueError):
        raise InvalidLinkToken() from None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        raise InvalidLinkToken()
    return data


def send_verification(user: User) -> None:
    """Queue a verification link for the user's current email, in the request's transaction:
    the change and its message commit (or roll back) together."""
    token = serializer(VERIFY_SALT).dumps({"u": user.id, "e": user.email})
    mail.enqueue(user.email, "Confirm your email address", "verify_email", user=user,
              link=mail.link(VERIFY_PATH, token=token),
              hours=current_app.config["EMAIL_VERIFICATION_HOURS"])
