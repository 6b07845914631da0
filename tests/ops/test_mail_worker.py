"""`flask worker` as the process operators run: it picks up queued mail, finishes the message in
hand on SIGTERM, leaves a message to be sent again after its lease when killed with SIGKILL
(same Message-ID), and two workers racing send each message once (PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app import mail
from app.extensions import db
from app.models import MailStatus, OutboxMessage, ScheduledJob
from tests.helpers import ROOT, ScriptedSmtp, free_port, production_settings, smtp_on, start_worker, wait_for

BOOT = 60  # seconds a worker may take to start on a busy machine


def queue(app: Flask, count: int = 1) -> list[str]:
    with app.test_request_context():
        ids = [mail.enqueue(f"person{n}@example.com", "Reset your password", "reset_password", user=None,
                            link=f"http://localhost/reset-password?token={n}", minutes=30).message_id
               for n in range(count)]
        db.session.commit()
        return ids


def statuses(app: Flask) -> dict[str, int]:
    with app.app_context():
        found = {status: n for status, n in db.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))}
        db.session.remove()
        return {str(status): n for status, n in found.items()}


def test_a_worker_sends_what_is_queued_while_it_runs_and_runs_the_upkeep(app, database_url):
    port = free_port()
    handler = ScriptedSmtp()
    with smtp_on(port, handler):
        worker = start_worker(database_url, port)
        try:
            with app.app_context():
                wait_for(lambda: db.session.scalar(select(func.count()).select_from(ScheduledJob)) == 3
                         and db.session.scalar(select(func.count()).where(ScheduledJob.last_run_at.is_not(None))) == 3,
                         BOOT, "the upkeep jobs to run")
                db.session.remove()
            [message_id] = queue(app)
            wait_for(lambda: handler.received, 30, "the message")
        finally:
            assert worker.stop() == 0, worker.output()
    assert [m["Message-ID"] for m in handler.received] == [message_id]
    assert statuses(app) == {"sent": 1}


def test_sigterm_finishes_the_message_in_hand_then_exits(app, database_url):
    port = free_port()
    handler = ScriptedSmtp(delays=[3])
    [first, _second] = queue(app, 2)
    with smtp_on(port, handler):
        worker = start_worker(database_url, port)
        try:
            assert handler.data_started.wait(BOOT), worker.output()
            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(30) == 0, worker.output()
        finally:
            worker.stop()
    assert [m["Message-ID"] for m in handler.received] == [first]
    assert statuses(app) == {"sent": 1, "waiting": 1}


def test_sigint_stops_an_idle_worker(app, database_url):
    worker = start_worker(database_url, free_port())
    try:
        wait_for(lambda: "worker started" in worker.output(), BOOT, "the worker to start")
        worker.process.send_signal(signal.SIGINT)
        assert worker.process.wait(30) == 0, worker.output()
        assert "Traceback" not in worker.output()
    finally:
        worker.stop()


def test_a_message_whose_worker_was_killed_mid_send_is_sent_again_after_the_lease(app, database_url):
    port = free_port()
    handler = ScriptedSmtp(delays=[60])  # the first DATA hangs until the worker is gone
    [message_id] = queue(app)
    with smtp_on(port, handler):
        killed = start_worker(database_url, port, MAIL_LEASE="2")
        try:
            assert handler.data_started.wait(BOOT), killed.output()
            killed.process.send_signal(signal.SIGKILL)
            killed.process.wait(10)
        finally:
            killed.stop()
        assert statuses(app) == {"waiting": 1}
        successor = start_worker(database_url, port, MAIL_LEASE="2")
        try:
            wait_for(lambda: handler.received, BOOT, "the message to be sent again")
        finally:
            assert successor.stop() == 0, successor.output()
    assert handler.seen == [message_id, message_id]  # the same Message-ID: mail systems drop the duplicate
    assert [m["Message-ID"] for m in handler.received] == [message_id]
    with app.app_context():
        row = db.session.scalar(select(OutboxMessage))
        assert (row.status, row.attempts) == (MailStatus.SENT, 2)


def test_two_workers_racing_send_each_message_once(app, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs a single worker (no FOR UPDATE SKIP LOCKED)")
    port = free_port()
    handler = ScriptedSmtp(delays=[0.1] * 40)
    with smtp_on(port, handler):
        workers = [start_worker(database_url, port, WORKER_POLL_INTERVAL="0.05") for _ in range(2)]
        try:
            for worker in workers:
                wait_for(lambda w=worker: "worker started" in w.output(), BOOT, "both workers to start")
            message_ids = queue(app, 40)
            wait_for(lambda: len(handler.received) >= 40, 2 * BOOT, "every message")
        finally:
            for worker in workers:
                assert worker.stop() == 0, worker.output()
    assert sorted(m["Message-ID"] for m in handler.received) == sorted(message_ids)
    assert sorted(handler.seen) == sorted(message_ids)  # no message was even begun twice
    assert statuses(app) == {"sent": 40}
    assert all("mail sent" in worker.output() for worker in workers), "one worker sent everything"


def _sigint_as_a_terminal_gives_it() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_make_runs_a_worker_beside_gunicorn_that_writes_readable_mail_and_one_sigint_stops_both(
        app, database_url, make_user, tmp_path):
    """`make run`'s supervisor (scripts/run.sh), as a terminal's Ctrl-C reaches it: SIGINT to its group."""
    person = make_user()
    port = free_port()
    mailbox = tmp_path / "mail"
    env = {**os.environ, **production_settings(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}"),
           "DATABASE_URL": database_url, "MAIL_BACKEND": "file", "MAIL_FILE_PATH": str(mailbox),
           "PORT": str(port), "WEB_CONCURRENCY": "1", "FLASK_APP": "wsgi.py", "FLASK_SKIP_DOTENV": "1",
           "BIN": str(Path(sys.executable).parent)}
    # As from a terminal: Ctrl-C's signal not ignored, even when this suite itself was started in the
    # background of a shell (which ignores SIGINT for its background jobs, and a shell cannot trap
    # a signal ignored on entry).
    run = subprocess.Popen(["scripts/run.sh"], cwd=ROOT, env=env, start_new_session=True,
                           preexec_fn=_sigint_as_a_terminal_gives_it,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), BOOT, "gunicorn")
        response = requests.post(f"http://127.0.0.1:{port}/api/auth/password-reset", json={"email": person.email},
                                 timeout=10)
        assert response.status_code == 202
        wait_for(lambda: list(mailbox.glob("*")), 30, "a message in the mailbox")
        [written] = list(mailbox.glob("*"))
        lines = written.read_text().splitlines()
        assert any(line.startswith(f"http://127.0.0.1:{port}/reset-password?token=") and " " not in line
                   for line in lines), lines  # the link on a line of its own, ready to open
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(30) == 130
        assert subprocess.run(["pgrep", "-g", str(run.pid)], capture_output=True).stdout == b""  # none left
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_worker_serves_its_sent_retried_and_failed_counters(app, database_url):
    smtp_port, metrics_port = free_port(), free_port()
    handler = ScriptedSmtp(replies=["451 4.3.0 Later", "250 OK", "550 5.1.1 No such mailbox"])
    queue(app, 2)
    with smtp_on(smtp_port, handler):
        worker = start_worker(database_url, smtp_port, WORKER_METRICS_BIND=f"127.0.0.1:{metrics_port}",
                              MAIL_RETRY_DELAY="0.1")
        try:
            wait_for(lambda: statuses(app) == {"sent": 1, "failed": 1}, BOOT, "one sent and one failed")
            text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        finally:
            assert worker.stop() == 0, worker.output()
    counted = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    assert (counted["app_mail_sent_total"], counted["app_mail_retried_total"], counted["app_mail_failed_total"]) \
        == (1, 1, 1)
