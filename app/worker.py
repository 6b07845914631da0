"""`flask worker`: delivers the mail outbox and runs the periodic upkeep.

Any number of workers may run, on any number of hosts:

- A message is claimed in a short transaction (`SELECT ... FOR UPDATE SKIP LOCKED` on
  PostgreSQL: two workers never take the same row), which sets a lease (`locked_until`,
  `MAIL_LEASE` ahead) and commits. The send happens outside any transaction; its result is
  recorded in another. A worker killed in between leaves the row to be claimed again once the
  lease runs out: at least once, with the stored Message-ID so mail systems drop a duplicate.
- A failed send is retried after `MAIL_RETRY_DELAY`, doubling each time with jitter, up to
  `MAIL_MAX_ATTEMPTS`; a permanent refusal (an SMTP 5xx reply) fails at once.
- Each upkeep job has a row in `scheduled_jobs`; the worker that locks a due row (SKIP LOCKED)
  runs the job in that transaction, so one worker at a time runs it, cluster-wide.
- An idle worker asks for due mail every `WORKER_POLL_INTERVAL`: one indexed query, which also
  works through a pooler in transaction mode (where LISTEN does not).
- SIGTERM or SIGINT: the message in hand is finished and recorded, then the worker exits.

On SQLite, where FOR UPDATE does not exist, run a single worker.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, current_app
from opentelemetry import propagate, trace
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app import mail
from app.extensions import db
from app.metrics import MAIL_FAILED, MAIL_RETRIED, MAIL_SENT
from app.models import MailStatus, OutboxMessage, ScheduledJob, utcnow
from app.services import idempotency, outbox, sessions

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

MAX_RETRY_DELAY = timedelta(hours=6)
JITTER = 0.2  # each delay is drawn from ±20% around its nominal value, so retries spread out
UPKEEP_CHECK_SECONDS = 60  # how often a worker looks for due upkeep jobs (at most UPKEEP_INTERVAL)
ERROR_LENGTH = 500


def retry_delay(attempts: int, first: float) -> timedelta:
    """The wait after the `attempts`-th failed send: `first`, doubling each time, at most six
    hours, with jitter. With the defaults (10 s, 15 attempts) the last try is about a day after the first."""
    nominal = min(first * 2 ** (attempts - 1), MAX_RETRY_DELAY.total_seconds())
    return timedelta(seconds=nominal * random.uniform(1 - JITTER, 1 + JITTER))


def describe(error: BaseException) -> str:
    """A line for `last_error`: the server's reply when it gave one, else the error's kind."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = [f"{code} {reply.decode(errors='replace')}" for code, reply in error.recipients.values()]
        text = f"recipient refused: {'; '.join(replies)}"
    elif isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else error.smtp_error
        text = f"{error.smtp_code} {reply}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:ERROR_LENGTH]


# ---- delivery -----------------------------------------------------------------------


def claim() -> OutboxMessage | None:
    """Take the next due message, if any, under a lease; committed before it is sent."""
    now = utcnow()
    message = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.status == MailStatus.WAITING, OutboxMessage.next_attempt_at <= now,
               or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until <= now))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if message is None:
        db.session.rollback()
        return None
    message.locked_until = now + timedelta(seconds=current_app.config["MAIL_LEASE"])
    message.attempts += 1
    db.session.commit()
    return message


def send(message: OutboxMessage) -> bool:
    """Send a claimed message and record the result; whether it was sent."""
    parent = propagate.extract(message.trace_context or {})
    with tracer.start_as_current_span("mail.deliver", context=parent, kind=trace.SpanKind.CONSUMER,
                                      attributes={"messaging.message.id": message.message_id,
                                                  "mail.template": message.template,
                                                  "mail.attempt": message.attempts}) as span:
        try:
            with tracer.start_as_current_span("smtp.send", kind=trace.SpanKind.CLIENT):
                mail.deliver(message)
        except Exception as error:  # any error: one message the backend cannot take must not stop the worker
            if not isinstance(error, OSError | smtplib.SMTPException):
                log.exception("mail %s could not be sent", message.id)
            span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR, describe(error))
            _record_failure(message, error)
            return False
        _record_sent(message)
        return True


def _record_sent(message: OutboxMessage) -> None:
    message.status = MailStatus.SENT
    message.sent_at = utcnow()
    message.locked_until = None
    message.last_error = None
    message.body_text = message.body_html = None  # its links stay live for a while: not kept at rest
    db.session.commit()
    MAIL_SENT.inc()
    log.info("mail sent: id=%s template=%s attempt=%s", message.id, message.template, message.attempts)


def _record_failure(message: OutboxMessage, error: BaseException) -> None:
    message.last_error = describe(error)
    message.locked_until = None
    if mail.is_permanent(error) or message.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]:
        message.status = MailStatus.FAILED
        db.session.commit()
        MAIL_FAILED.inc()
        log.warning("mail failed for good: id=%s template=%s attempts=%s: %s", message.id, message.template,
                    message.attempts, message.last_error)
        return
    message.next_attempt_at = utcnow() + retry_delay(message.attempts, current_app.config["MAIL_RETRY_DELAY"])
    db.session.commit()
    MAIL_RETRIED.inc()
    log.warning("mail not sent, will retry: id=%s attempt=%s next=%s: %s", message.id, message.attempts,
                message.next_attempt_at.isoformat(timespec="seconds"), message.last_error)


def deliver_due(limit: int | None = None, stopping: threading.Event | None = None) -> int:
    """Send due messages until none is due (or `limit`, or `stopping`); how many were handled.
    The worker's loop calls it; tests call it to deliver in-process what requests queued."""
    handled = 0
    while (limit is None or handled < limit) and not (stopping and stopping.is_set()):
        message = claim()
        if message is None:
            break
        send(message)
        handled += 1
    return handled


# ---- upkeep ---------------------------------------------------------------------------


def _prune_sent_mail() -> str:
    return f"removed {outbox.prune_sent(timedelta(days=current_app.config['MAIL_KEEP_SENT_DAYS']))} sent messages"


UPKEEP: dict[str, Callable[[], str]] = {
    "prune-sessions": lambda: f"removed {sessions.prune()} ended or expired sessions",
    "prune-idempotency-keys": lambda: f"removed {idempotency.prune()} expired idempotency keys",
    "prune-sent-mail": _prune_sent_mail,
}


def ensure_schedule() -> bool:
    """Give each upkeep job its row, due now, unless it has one (True once done)."""
    for name in UPKEEP:
        if db.session.get(ScheduledJob, name) is None:
            db.session.add(ScheduledJob(name=name, next_run_at=utcnow()))
            try:
                db.session.commit()
            except IntegrityError:  # another worker made it meanwhile
                db.session.rollback()
    db.session.rollback()
    return True


def run_due_upkeep() -> list[str]:
    """Run each due job whose row no other worker holds; the names of those run."""
    ran = []
    for name, job in UPKEEP.items():
        now = utcnow()
        row = db.session.scalars(
            select(ScheduledJob).where(ScheduledJob.name == name, ScheduledJob.next_run_at <= now)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            db.session.rollback()
            continue
        with tracer.start_as_current_span(f"upkeep.{name}"):
            result = job()
        row.last_run_at = now
        row.last_result = result[:200]
        row.next_run_at = now + timedelta(seconds=current_app.config["UPKEEP_INTERVAL"])
        db.session.commit()
        log.info("upkeep %s: %s", name, result)
        ran.append(name)
    return ran


# ---- the loop -------------------------------------------------------------------------


@dataclass
class Worker:
    app: Flask
    stopping: threading.Event

    def stop(self, signum: int, _frame: object) -> None:
        log.info("worker: %s received; finishing the message in hand", signal.Signals(signum).name)
        self.stopping.set()

    def run(self) -> None:
        config = self.app.config
        poll = config["WORKER_POLL_INTERVAL"]
        next_upkeep = 0.0
        scheduled = False
        log.info("worker started: mail backend %s, polling every %ss", config["MAIL_BACKEND"], poll)
        while not self.stopping.is_set():
            if time.monotonic() >= next_upkeep:
                scheduled = scheduled or self._guarded(ensure_schedule) is not None
                self._guarded(run_due_upkeep)
                next_upkeep = time.monotonic() + min(UPKEEP_CHECK_SECONDS, config["UPKEEP_INTERVAL"])
            handled = self._guarded(lambda: deliver_due(stopping=self.stopping))
            db.session.remove()
            if not handled:
                self.stopping.wait(poll)
        log.info("worker stopped")

    def _guarded(self, step: Callable[[], object]) -> object:
        """A database that does not answer is logged and waited out, never the end of the worker."""
        try:
            return step()
        except SQLAlchemyError as error:
            with contextlib.suppress(SQLAlchemyError):
                db.session.rollback()
            log.warning("worker: database error, retrying shortly: %s",
                        str(getattr(error, "orig", None) or error).strip().splitlines()[0])
            return None
