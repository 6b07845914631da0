"""Sending mail through Flask-Mailman: a plain-text and an HTML part, or a clear failure.

`MAIL_SERVER` set: SMTP (`MAIL_PORT`, `MAIL_USE_TLS`/`MAIL_USE_SSL`, `MAIL_USERNAME`/
`MAIL_PASSWORD`). Unset (development, tests): each message is written to the log,
links included, so a first run needs no mail server. `MAIL_BACKEND=log` forces the
log for harnesses (fuzzing, benchmarks) that run production settings without a mail server.
"""

from __future__ import annotations

import logging
import smtplib
from urllib.parse import urlencode

from flask import Flask, current_app, render_template
from flask_mailman import EmailMultiAlternatives
from flask_mailman.backends.base import BaseEmailBackend

from app.errors import MailUnavailable
from app.extensions import mail
from app.urls import public_base_url

log = logging.getLogger(__name__)
LOG_BACKEND = "app.mail.LogEmailBackend"


class LogEmailBackend(BaseEmailBackend):
    """Writes each message's recipients, subject and text to the log instead of sending it."""

    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            log.info("mail written to the log, not sent: to=%s subject=%r\n%s",
                        ", ".join(message.to), message.subject, message.body)
        return len(email_messages)


def init_app(app: Flask) -> None:
    backend = app.config.get("MAIL_BACKEND") or ""
    if backend == "log" or (not backend and not app.config.get("MAIL_SERVER")):
        app.config["MAIL_BACKEND"] = LOG_BACKEND
    elif not backend:
        app.config["MAIL_BACKEND"] = "smtp"
    mail.init_app(app)


def link(path: str, **query: str) -> str:
    """An absolute link to this service: from `PUBLIC_BASE_URL`, never from the request,
    unless it is unset (development: app/urls.py)."""
    return f"{public_base_url()}{path}?{urlencode(query)}"


def send(to: str, subject: str, template: str, **context: object) -> None:
    """Send one message rendered from `mail/<template>.txt` and `.html`; MailUnavailable if it cannot go."""
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_template(f"mail/{template}.txt", **context),
        to=[to],
    )
    message.attach_alternative(render_template(f"mail/{template}.html", **context), "text/html")
    try:
        message.send()
    except (OSError, smtplib.SMTPException) as error:
        log.warning("mail server unavailable: %s", type(error).__name__)
        raise MailUnavailable() from None


def probe() -> None:
    """Connect to the mail server and leave, as sending would; MailUnavailable if it does not answer.

    A password reset for an unknown email sends nothing, yet must fail like one for a
    known email when the server is down, or the 503 would tell which emails exist."""
    if current_app.config["MAIL_BACKEND"] == LOG_BACKEND:
        return
    try:
        connection = mail.get_connection()
        connection.open()
        connection.close()
    except (OSError, smtplib.SMTPException) as error:
        log.warning("mail server unavailable: %s", type(error).__name__)
        raise MailUnavailable() from None
