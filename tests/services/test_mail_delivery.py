"""The outbox delivered by the worker's own function (`app.worker.deliver_due`), against real SMTP
servers (aiosmtpd) that are slow, down, refusing for now (4xx) or for good (5xx); the upkeep
schedule. The worker as a process (signals, SIGKILL, two workers racing): tests/ops/test_mail_worker.py.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from flask import Flask
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from sqlalchemy import select, text, update

from app import mail
from app.extensions import db
from app.metrics import MAIL_FAILED, MAIL_RETRIED, MAIL_SENT
from app.models import AuthSession, IdempotencyKey, MailStatus, OutboxMessage, ScheduledJob, utcnow
from app.services import accounts, outbox
from app.worker import UPKEEP, deliver_due, retry_delay, run_due_upkeep
from tests.helpers import PASSWORD, ScriptedSmtp, free_port, smtp_on

RETRY = 0.2  # MAIL_RETRY_DELAY for these tests: a retry is due a moment later


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def mail_to(make_app, port):
    """An app whose worker sends to 127.0.0.1:`port`, retrying after RETRY seconds."""

    def build(**overrides) -> Flask:
        return make_app(**{"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": port, "MAIL_RETRY_DELAY": RETRY,
                           "MAIL_TIMEOUT": 2, **overrides})

    return build


def queue(app: Flask, to: str = "ann@example.com") -> str:
    """Queue a reset message for `to` as a request would, committed; its Message-ID."""
    with app.test_request_context():
        message = mail.enqueue(to, "Reset your password", "reset_password", user=None,
                               link="http://localhost/reset-password?token=t", minutes=30)
        db.session.commit()
        return message.message_id


def deliver(app: Flask) -> int:
    with app.app_context():
        try:
            return deliver_due()
        finally:
            db.session.remove()


def rows(app: Flask) -> list[OutboxMessage]:
    with app.app_context():
        found = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        db.session.remove()
        return found


def make_due(app: Flask) -> None:
    """Skip the wait before the next attempt (the delay itself is proved by test_retry_delays...)."""
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


def _sample(counter) -> float:
    [metric] = counter.collect()
    return next(s.value for s in metric.samples if s.name.endswith("_total"))


def test_a_queued_message_is_sent_with_its_stored_message_id_and_its_bodies_are_cleared(mail_to, port):
    app = mail_to()
    message_id = queue(app)
    handler = ScriptedSmtp()
    sent_before = _sample(MAIL_SENT)
    with smtp_on(port, handler):
        assert deliver(app) == 1
    [received] = handler.received
    assert received["Message-ID"] == message_id
    assert "http://localhost/reset-password?token=t" in received.get_body(("plain",)).get_content()
    [row] = rows(app)
    assert (row.status, row.attempts, row.last_error) == (MailStatus.SENT, 1, None)
    assert row.sent_at is not None and row.body_text is None and row.body_html is None
    assert _sample(MAIL_SENT) == sent_before + 1
    assert deliver(app) == 0  # sent once


def test_a_server_that_is_down_then_back_gets_the_message_at_the_next_attempt(mail_to, port):
    app = mail_to()
    message_id = queue(app)
    assert deliver(app) == 1  # nobody listens on the port
    [row] = rows(app)
    assert (row.status, row.attempts) == (MailStatus.WAITING, 1)
    assert "Connection" in row.last_error or "Error" in row.last_error
    assert deliver(app) == 0  # not due yet
    time.sleep(RETRY * 1.5)
    handler = ScriptedSmtp()
    with smtp_on(port, handler):
        assert deliver(app) == 1
    assert [m["Message-ID"] for m in handler.received] == [message_id]
    assert rows(app)[0].status == MailStatus.SENT


def test_a_temporary_refusal_is_retried_and_the_retry_carries_the_same_message_id(mail_to, port):
    app = mail_to()
    message_id = queue(app)
    handler = ScriptedSmtp(replies=["451 4.3.0 Try again later"])
    retried_before = _sample(MAIL_RETRIED)
    with smtp_on(port, handler):
        deliver(app)
        [row] = rows(app)
        assert (row.status, row.attempts) == (MailStatus.WAITING, 1)
        assert row.last_error.startswith("451")
        assert _sample(MAIL_RETRIED) == retried_before + 1
        make_due(app)
        deliver(app)
    assert handler.seen == [message_id, message_id]
    assert len(handler.received) == 1
    assert rows(app)[0].status == MailStatus.SENT


def test_a_permanent_refusal_fails_at_once(mail_to, port):
    app = mail_to()
    queue(app)
    handler = ScriptedSmtp(replies=["550 5.1.1 No such mailbox"])
    failed_before = _sample(MAIL_FAILED)
    with smtp_on(port, handler):
        deliver(app)
        make_due(app)
        assert deliver(app) == 0  # failed rows are never claimed
    [row] = rows(app)
    assert (row.status, row.attempts) == (MailStatus.FAILED, 1)
    assert row.last_error.startswith("550")
    assert _sample(MAIL_FAILED) == failed_before + 1


def test_a_message_fails_after_mail_max_attempts(mail_to):
    app = mail_to(MAIL_MAX_ATTEMPTS=3)
    queue(app)
    for _ in range(3):
        deliver(app)  # the server is down
        make_due(app)
    [row] = rows(app)
    assert (row.status, row.attempts) == (MailStatus.FAILED, 3)


def test_a_server_slower_than_mail_timeout_counts_as_a_failed_attempt_then_delivers(mail_to, port):
    app = mail_to(MAIL_TIMEOUT=1)
    message_id = queue(app)
    handler = ScriptedSmtp(delays=[3])  # the first DATA is answered after the client gave up
    with smtp_on(port, handler):
        deliver(app)
        [row] = rows(app)
        assert (row.status, row.attempts) == (MailStatus.WAITING, 1)
        make_due(app)
        deliver(app)
    assert [m["Message-ID"] for m in handler.received][-1] == message_id
    assert rows(app)[0].status == MailStatus.SENT


def test_retry_delays_start_within_a_minute_and_span_about_a_day(app):
    first = app.config["MAIL_RETRY_DELAY"]
    attempts = app.config["MAIL_MAX_ATTEMPTS"]
    delays = [retry_delay(n, first) for n in range(1, attempts)]
    assert sum(d.total_seconds() for d in delays[:3]) < 90  # three tries in the first minute and a half
    assert delays[0] <= timedelta(seconds=first * 1.2)
    total = sum(d.total_seconds() for d in delays) / 3600
    assert 18 <= total <= 30, total
    jittered = {retry_delay(5, first) for _ in range(20)}
    assert len(jittered) > 1  # two workers' retries do not fall on the same instant


def test_a_rolled_back_unit_of_work_queues_nothing(app, mail_to, port):
    mailing = mail_to()
    with mailing.test_request_context():
        accounts.register(email="ann@example.com", name="Ann Example", password=PASSWORD)
        db.session.rollback()
    handler = ScriptedSmtp()
    with smtp_on(port, handler):
        assert deliver(mailing) == 0
    assert handler.seen == [] and rows(app) == []


def test_the_answer_to_a_reset_does_not_wait_for_the_mail_server(mail_to, port, make_user):
    app = mail_to()
    person = make_user()
    handler = ScriptedSmtp(delays=[30])
    with smtp_on(port, handler):
        response = app.test_client().post("/api/auth/password-reset", json={"email": person.email})
        assert response.status_code == 202
        assert handler.seen == []  # the request opened no connection: the message waits in the outbox
    assert [r.recipient for r in rows(app)] == [person.email]


def test_send_again_puts_a_failed_message_back_with_fresh_attempts(mail_to, port):
    app = mail_to()
    message_id = queue(app)
    with smtp_on(port, ScriptedSmtp(replies=["554 5.7.1 Rejected"])):
        deliver(app)
    with app.app_context():
        outbox.send_again(rows(app)[0].id)
        db.session.commit()
    handler = ScriptedSmtp()
    with smtp_on(port, handler):
        deliver(app)
    assert [m["Message-ID"] for m in handler.received] == [message_id]


# ---- upkeep -----------------------------------------------------------------------------


def test_upkeep_prunes_sessions_keys_and_old_sent_mail_once_per_interval(app, mail_to, make_user, port):
    worker_app = mail_to(MAIL_KEEP_SENT_DAYS=7)
    person = make_user()
    queue(worker_app, "old@example.com")
    queue(worker_app, "recent@example.com")
    with smtp_on(port, ScriptedSmtp()):
        deliver(worker_app)
    with app.app_context():
        db.session.execute(update(AuthSession).values(ended_at=utcnow()))
        db.session.add(IdempotencyKey(scope="s", method="POST", path="/p", key="k", fingerprint="f", status=201,
                                      headers={}, body=b"", expires_at=utcnow() - timedelta(hours=1)))
        db.session.execute(update(OutboxMessage).where(OutboxMessage.recipient == "old@example.com")
                           .values(sent_at=utcnow() - timedelta(days=8)))
        db.session.commit()
    with worker_app.app_context():
        assert run_due_upkeep() == []  # no schedule rows yet: a worker makes them at start
        for name in UPKEEP:
            db.session.add(ScheduledJob(name=name))
        db.session.commit()
        assert sorted(run_due_upkeep()) == sorted(UPKEEP)
        assert run_due_upkeep() == []  # not due again before UPKEEP_INTERVAL
        db.session.remove()
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(AuthSession)) == 0
        assert db.session.scalar(select(db.func.count()).select_from(IdempotencyKey)) == 0
        assert [r.recipient for r in db.session.scalars(select(OutboxMessage))] == ["recent@example.com"]
    assert person  # the session pruned was this person's


def test_an_upkeep_job_another_worker_holds_is_skipped(app, make_app, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one worker: there is no other to hold the row")
    worker_app = make_app()
    with app.app_context():
        for name in UPKEEP:
            db.session.add(ScheduledJob(name=name))
        db.session.commit()
        with db.engine.connect() as other:  # another worker, in the middle of the job
            other.execute(text("SELECT * FROM scheduled_jobs WHERE name = 'prune-sessions' FOR UPDATE"))
            with worker_app.app_context():
                ran = run_due_upkeep()
                db.session.remove()
            other.rollback()
    assert "prune-sessions" not in ran and len(ran) == len(UPKEEP) - 1


# ---- the trace context travels with the message ----------------------------------------------


def test_a_message_queued_inside_a_trace_carries_its_w3c_trace_context(app):
    context = SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331,
                          is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with app.test_request_context(), trace.use_span(NonRecordingSpan(context)):
        message = mail.enqueue("ann@example.com", "Reset your password", "reset_password", user=None,
                               link="http://x/?token=t", minutes=30)
        db.session.commit()
        assert message.trace_context == {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    with app.test_request_context():
        untraced = mail.enqueue("bob@example.com", "Reset your password", "reset_password", user=None,
                                link="http://x/?token=t", minutes=30)
        assert untraced.trace_context is None  # no span, no SDK: nothing to carry


def test_a_backend_error_of_another_kind_is_recorded_and_retried_not_the_end_of_the_worker(make_app, tmp_path):
    not_a_folder = tmp_path / "mail"
    not_a_folder.write_text("a file where the mailbox folder should be")
    app = make_app(MAIL_BACKEND="file", MAIL_FILE_PATH=str(not_a_folder), MAIL_RETRY_DELAY=RETRY)
    queue(app)
    queue(app, "bob@example.com")
    assert deliver(app) == 2  # both tried: the first one's error did not stop the loop
    assert [(r.status, r.attempts) for r in rows(app)] == [(MailStatus.WAITING, 1)] * 2
    assert rows(app)[0].last_error.startswith("ImproperlyConfigured")
