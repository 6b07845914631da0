"""Budgets of what one account may cost: password guesses, and verification mail.

Password guesses, in budgets that an attacker cannot spend on the owner's behalf.

Every check of a password (login through the API or the admin pages, a
`current_password`) is counted before bcrypt runs, atomically, and then judged:
concurrent guesses cannot all slip through a check made before any of them counted.
A right password gives its count back, so the owner never spends budget.

- per (email, client IP): one client guessing at one account;
- per email, from anywhere: all guesses at one account from unknown devices;
- per device: a client that presents a `device_token` from an earlier successful
  sign-in of that account, or the owner signed in with a live session, is judged
  against that device's own budget, so a lockout that strangers cause by guessing
  does not keep the owner out (OWASP's "device cookies");
- per account, over all its devices: kept device tokens add no guesses beyond one cap.

Budgets and device tokens belong to the account's credentials epoch
(`User.credentials_epoch`): a new password, a completed reset and "log out everywhere"
move it on, which ends every device token and starts every budget of the account afresh.

Counters live in the rate limiter's storage (Redis when `REDIS_URL` is set, so
every worker and host agrees) and follow `RATELIMIT_ENABLED`. While that storage
does not answer, each process counts in its own memory: guessing stays bounded.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import update

from app.emails import email_key
from app.errors import TooManyAttempts
from app.extensions import db, limiter
from app.models import User

log = logging.getLogger(__name__)

DEVICE_SALT = "device-token"
_fallback = FixedWindowRateLimiter(MemoryStorage())


@dataclass(frozen=True)
class Client:
    """Who is asking, as the face that received the request saw it. `session`: the
    (user id, session id) of the caller's live sign-in, when they are signed in."""

    ip: str
    device_token: str | None = None
    session: tuple[int, str] | None = None


@dataclass(frozen=True)
class _Budget:
    config_key: str
    identifiers: tuple[str, ...]

    @property
    def item(self) -> RateLimitItem:
        return parse(current_app.config[self.config_key])


def issue_device_token(user: User) -> str:
    """A signed, random device id for this account and its current credentials; never stored."""
    return _serializer().dumps({"u": user.id, "e": user.credentials_epoch, "d": secrets.token_urlsafe(12)})


def forget_devices(user_id: int) -> None:
    """Move the account's credentials epoch on, in the caller's transaction: its device tokens
    stop counting and its guessing budgets start afresh. A Core UPDATE, so the account's
    version (its ETag) does not change with it."""
    db.session.execute(update(User).where(User.id == user_id)
                       .values(credentials_epoch=User.credentials_epoch + 1))


def _device_of(token: str | None, user: User | None) -> str | None:
    """The device id when `token` is a device token this server issued for `user` in its
    current credentials epoch, and still young."""
    if not token or user is None or len(token) > 512:
        return None
    max_age = current_app.config["DEVICE_TOKEN_DAYS"] * 86400
    try:
        data = _serializer().loads(token, max_age=max_age)
    except (BadData, UnicodeError, ValueError):
        return None
    if (not isinstance(data, dict) or data.get("u") != user.id or data.get("e") != user.credentials_epoch
            or not isinstance(data.get("d"), str)):
        return None
    return data["d"]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=DEVICE_SALT)


def budgets(email: str, user: User | None, client: Client) -> list[_Budget]:
    """The budgets a password check for this account, from this client, is counted against."""
    email = email_key(email)
    epoch = str(user.credentials_epoch) if user is not None else "0"
    device = _device_of(client.device_token, user)
    if user is not None and client.session is not None and client.session[0] == user.id:
        device = "session:" + client.session[1]  # a live sign-in is a device that knew the password
    if device is not None:
        account = str(user.id)  # type: ignore[union-attr]
        return [_Budget("LOGIN_FAILURES_PER_DEVICE", ("device", account, epoch, device)),
                _Budget("LOGIN_FAILURES_PER_ACCOUNT_DEVICES", ("devices", account, epoch))]
    return [
        _Budget("LOGIN_FAILURES_PER_EMAIL_IP", ("email-ip", email, epoch, client.ip)),
        _Budget("LOGIN_FAILURES_PER_EMAIL", ("email", email, epoch)),
    ]


def _enabled() -> bool:
    return bool(current_app.config["RATELIMIT_ENABLED"])


def _identifiers(budget: _Budget) -> tuple[str, ...]:
    return (current_app.config["RATELIMIT_KEY_PREFIX"], "account-budgets", *budget.identifiers)


def _count(item: RateLimitItem, ids: tuple[str, ...], cost: int) -> bool:
    """Add `cost` to a budget's count in one atomic step; whether it is still within the limit.
    Always a fixed window, whatever strategy the request limits use: a count given back
    (`cost=-1`) must undo exactly what was added."""
    try:
        return FixedWindowRateLimiter(limiter.storage).hit(item, *ids, cost=cost)
    except Exception:  # storage down: this process counts on its own until it answers
        log.warning("rate limit storage unavailable; counting password failures in memory")
        return _fallback.hit(item, *ids, cost=cost)


def _reset_in(item: RateLimitItem, ids: tuple[str, ...]) -> int:
    try:
        reset = FixedWindowRateLimiter(limiter.storage).get_window_stats(item, *ids).reset_time
    except Exception:
        reset = _fallback.get_window_stats(item, *ids).reset_time
    return max(1, math.ceil(reset - time.time()))


def spend(spent: list[_Budget], refusal: str) -> None:
    """Count one against every budget, atomically, before the work they guard. Over any of
    them: every count is given back and 429 is raised, `refusal` saying what was refused."""
    if not _enabled():
        return
    counted = [(budget.item, _identifiers(budget)) for budget in spent]
    refused = [(item, ids) for item, ids in counted if not _count(item, ids, 1)]
    if refused:
        _give_back(spent)
        item, ids = refused[0]
        wait = _reset_in(item, ids)
        raise TooManyAttempts(f"{refusal}: the limit is {item}. Try again in {wait} seconds.", retry_after=wait)


def _give_back(spent: list[_Budget]) -> None:
    if _enabled():
        for budget in spent:
            _count(budget.item, _identifiers(budget), -1)


@contextmanager
def guess(spent: list[_Budget]) -> Iterator[None]:
    """Count one password check against every budget first, then let the caller judge it.

    Over any budget, 429 before bcrypt runs. The block returns normally for a right password
    (its counts are given back: only failures count) and raises for a wrong one (they stay)."""
    spend(spent, "Too many failed password attempts (sign in from a device that signed in to this "
                 "account before, or wait)")
    yield
    _give_back(spent)


def spend_on_mail(user_id: int, recipient: str) -> None:
    """What a verification message costs (`RATELIMIT_ACCOUNT_MAIL`): one of the account's budget
    and one of the recipient's, whoever asks, so that no account mails an address without bound."""
    spend([_Budget("RATELIMIT_ACCOUNT_MAIL", ("account-mail", str(user_id))),
           _Budget("RATELIMIT_ACCOUNT_MAIL", ("recipient-mail", email_key(recipient)))],
          "Too many verification emails for this account or this address")
