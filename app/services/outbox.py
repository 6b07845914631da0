"""The mail outbox as operators see it: what waits, what failed, sending a failed one again,
and pruning sent messages (app/mail.py queues them; app/worker.py delivers them)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from app.errors import NotFound
from app.extensions import db
from app.metrics import OutboxState
from app.models import MailStatus, OutboxMessage, utcnow

LIST_LIMIT = 200


def mask(address: str) -> str:
    """An address an operator may see on a shared screen: `j***@example.com`."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def state(now: datetime | None = None) -> OutboxState:
    """How many messages wait, how old the oldest is, how many failed."""
    now = now or utcnow()
    waiting, oldest = db.session.execute(
        select(func.count(), func.min(OutboxMessage.created_at)).where(OutboxMessage.status == MailStatus.WAITING)
    ).one()
    failed = db.session.scalar(select(func.count()).where(OutboxMessage.status == MailStatus.FAILED))
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return OutboxState(waiting=waiting, oldest_age_seconds=max(age, 0.0), failed=failed or 0)


def unsent(limit: int = LIST_LIMIT) -> list[OutboxMessage]:
    """Waiting and failed messages, failed first, then the oldest."""
    return list(db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.status != MailStatus.SENT)
        .order_by(OutboxMessage.status.desc(), OutboxMessage.id).limit(limit)
    ))


def send_again(message_id: int) -> OutboxMessage:
    """Put a failed message back in the queue, due now, with its attempts counted afresh."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.status != MailStatus.FAILED:
        raise NotFound("No failed message with this id: it may have been sent again already.")
    message.status = MailStatus.WAITING
    message.attempts = 0
    message.next_attempt_at = utcnow()
    message.locked_until = None
    db.session.flush()
    return message


def prune_sent(keep: timedelta, now: datetime | None = None) -> int:
    """Delete the rows of messages sent longer ago than `keep`."""
    before = (now or utcnow()) - keep
    result = db.session.execute(delete(OutboxMessage).where(OutboxMessage.status == MailStatus.SENT,
                                                            OutboxMessage.sent_at < before))
    return result.rowcount or 0
