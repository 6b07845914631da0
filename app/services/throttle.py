"""Password-guessing budgets that an attacker cannot spend on the owner's behalf.

Every check of a password (login through the API or the admin pages, a
`current_password`) is judged before bcrypt runs, and a wrong one is counted:

- per (email, client IP): one client guessing at one account;
- per email, from anywhere: all guesses at one account without a device token;
- per device: a client that presents a `device_token` from an earlier successful
  sign-in of that account is judged only against that device's own budget, so a
  lockout that strangers cause by guessing does not keep the owner out (OWASP's
  "device cookies").

Only failures count: the owner typing the right password never spends budget.
Counters live in the rate limiter's storage (Redis when `REDIS_URL` is set, so
every worker and host agrees) and follow `RATELIMIT_ENABLED`. While that storage
does not answer, each process counts in its own memory: guessing stays bounded.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter

from app.emails import email_key
from app.errors import TooManyAttempts
from app.extensions import limiter
from app.models import User

log = logging.getLogger(__name__)

DEVICE_SALT = "device-token"
_fallback = FixedWindowRateLimiter(MemoryStorage())


@dataclass(frozen=True)
class Client:
    """Who is asking, as the face that received the request saw it."""

    ip: str
    device_token: str | None = None


@dataclass(frozen=True)
class _Budget:
    config_key: str
    identifiers: tuple[str, ...]

    @property
    def item(self) -> RateLimitItem:
        return parse(current_app.config[self.config_key])


def issue_device_token(user: User) -> str:
    """A signed, random device id for this account; it is never stored, only recognised."""
    return _serializer().dumps({"u": user.id, "d": secrets.token_urlsafe(12)})


def _device_of(token: str | None, user: User | None) -> str | None:
    """The device id when `token` is a device token this server issued for `user`, and still young."""
    if not token or user is None or len(token) > 512:
        return None
    max_age = current_app.config["DEVICE_TOKEN_DAYS"] * 86400
    try:
        data = _serializer().loads(token, max_age=max_age)
    except (BadData, UnicodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("u") != user.id or not isinstance(data.get("d"), str):
        return None
    return data["d"]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=DEVICE_SALT)


def budgets(email: str, user: User | None, client: Client) -> list[_Budget]:
    email = email_key(email)
    device = _device_of(client.device_token, user)
    if device is not None:
        return [_Budget("LOGIN_FAILURES_PER_DEVICE", ("device", str(user.id), device))]  # type: ignore[union-attr]
    return [
        _Budget("LOGIN_FAILURES_PER_EMAIL_IP", ("email-ip", email, client.ip)),
        _Budget("LOGIN_FAILURES_PER_EMAIL", ("email", email)),
    ]


def _enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


def _identifiers(budget: _Budget) -> tuple[str, ...]:
    return (current_app.config.get("RATELIMIT_KEY_PREFIX", ""), "password-failures", *budget.identifiers)


def _strategy() -> RateLimiter:
    return limiter.limiter


def _test(item: RateLimitItem, ids: tuple[str, ...]) -> tuple[bool, float]:
    """Whether one more failure is allowed, and when the window resets."""
    for strategy in (_strategy(), _fallback):
        try:
            if strategy.test(item, *ids):
                return True, 0.0
            return False, strategy.get_window_stats(item, *ids).reset_time
        except Exception:  # storage down: this process counts on its own until it answers
            log.warning("rate limit storage unavailable; counting password failures in memory")
    return True, 0.0


def check(spent: list[_Budget]) -> None:
    """Refuse (429) before any bcrypt work when a budget is used up."""
    if not _enabled():
        return
    for budget in spent:
        item = budget.item
        allowed, reset = _test(item, _identifiers(budget))
        if not allowed:
            wait = max(1, math.ceil(reset - time.time()))
            raise TooManyAttempts(
                f"Too many failed password attempts: the limit is {item}. Try again in {wait} seconds, "
                "or sign in from a device that signed in to this account before.",
                retry_after=wait,
            )


def fail(spent: list[_Budget]) -> None:
    """Count one wrong password against every budget it was judged by."""
    if not _enabled():
        return
    for budget in spent:
        ids = _identifiers(budget)
        try:
            _strategy().hit(budget.item, *ids)
        except Exception:
            log.warning("rate limit storage unavailable; counting password failures in memory")
            _fallback.hit(budget.item, *ids)
