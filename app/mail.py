"""Mail through an outbox: a request queues a rendered message in its own transaction, and
`flask worker` (app/worker.py) delivers it through Flask-Mailman.

`enqueue` renders `mail/<template>.txt` and `.html` and adds a row to `mail_outbox`; it never
opens a connection, so a slow or absent mail server costs a request nothing, and a request that
rolls back sends nothing. `deliver` sends one such row with Flask-Mailman's backend:

- `MAIL_SERVER` set: SMTP (`MAIL_PORT`, `MAIL_USE_TLS`/`MAIL_USE_SSL`, `MAIL_USERNAME`/`MAIL_PASSWORD`).
- unset (development, tests), or `MAIL_BACKEND=file`: Flask-Mailman's file backend writes each
  message to a file of its own under `MAIL_FILE_PATH` (by default `instance/mail/`), so a
  first run needs no mail server and a person can read the links.
"""

from __future__ import annotations

import os
import smtplib
from email.utils import make_msgid, parseaddr
from urllib.parse import urlencode

from flask import Flask, current_app, render_template
from flask_mailman import EmailMultiAlternatives
from opentelemetry import propagate

from app.extensions import db, mail
from app.models import OutboxMessage
from app.urls import public_base_url

FILE_BACKEND = "file"
SMTP_BACKEND = "smtp"


def init_app(app: Flask) -> None:
    backend = app.config.get("MAIL_BACKEND") or ""
    if backend == FILE_BACKEND or (not backend and not app.config.get("MAIL_SERVER")):
        app.config["MAIL_BACKEND"] = FILE_BACKEND
    elif not backend:
        app.config["MAIL_BACKEND"] = SMTP_BACKEND
    if not app.config.get("MAIL_FILE_PATH"):
        app.config["MAIL_FILE_PATH"] = os.path.join(app.instance_path, "mail")
    mail.init_app(app)
    # Compiled now, once: under gunicorn's preload every worker inherits them, so a request
    # that queues mail right after a start does not pay for the compilation (nor answers
    # later than one that queues nothing).
    for name in app.jinja_env.list_templates(filter_func=lambda name: name.startswith("mail/")):
        app.jinja_env.get_template(name)


def link(path: str, **query: str) -> str:
    """An absolute link to this service: from `PUBLIC_BASE_URL`, never from the request,
    unless it is unset (development: app/urls.py)."""
    return f"{public_base_url()}{path}?{urlencode(query)}"


def enqueue(to: str, subject: str, template: str, **context: object) -> OutboxMessage:
    """Queue one message rendered from `mail/<template>.txt` and `.html`, in the caller's
    transaction: it is sent once that commits, and never if it rolls back."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)  # empty unless an OpenTelemetry SDK is configured (issue 29)
    message = OutboxMessage(
        message_id=make_msgid(domain=sender_domain()),
        recipient=to,
        template=template,
        subject=subject,
        body_text=render_template(f"mail/{template}.txt", **context),
        body_html=render_template(f"mail/{template}.html", **context),
        trace_context=carrier or None,
    )
    db.session.add(message)
    db.session.flush()
    return message


def sender_domain() -> str:
    """The domain of `MAIL_DEFAULT_SENDER`, for the Message-IDs this service makes."""
    address = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1]
    return address.rpartition("@")[2] or "localhost"


def build(message: OutboxMessage) -> EmailMultiAlternatives:
    """The email of an outbox row, with its stored Message-ID."""
    email = EmailMultiAlternatives(subject=message.subject, body=message.body_text or "", to=[message.recipient],
                                   headers={"Message-ID": message.message_id})
    email.attach_alternative(message.body_html or "", "text/html")
    return email


def deliver(message: OutboxMessage) -> None:
    """Send one message now, on a connection of its own (the file backend: a file of its own).
    Raises what the backend raises: OSError or smtplib.SMTPException."""
    connection = mail.get_connection()
    connection.send_messages([build(message)])


def smtp_code(error: BaseException) -> int | None:
    """The SMTP reply code of a refusal, when the server gave one."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return max(codes) if codes else None
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code
    return None


def is_permanent(error: BaseException) -> bool:
    """A 5xx reply: the server refuses this message for good, and retrying would not help."""
    code = smtp_code(error)
    return code is not None and 500 <= code < 600
