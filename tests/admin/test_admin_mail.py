"""The admin's Mail page: waiting and failed messages with masked recipients, and "send again"
for a failed one (a CSRF-protected form like every other admin change)."""

from __future__ import annotations

from sqlalchemy import select, update

from app.extensions import db
from app.models import MailStatus, OutboxMessage
from tests.admin_support import assert_admin_html, signed_in, submit, text_of
from tests.helpers import queue_mail


def fail(app, message_id: int, error: str) -> None:
    with app.app_context():
        db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id)
                           .values(status=MailStatus.FAILED, attempts=1, last_error=error))
        db.session.commit()


def test_the_mail_page_lists_waiting_and_failed_messages_with_masked_recipients(app, client, admin):
    queue_mail(app, "waiting.person@example.com")
    fail(app, queue_mail(app, "failed.person@example.com"), "550 5.1.1 No such mailbox")
    signed_in(client, admin)
    body = assert_admin_html(client.get("/admin/mail"), 200)
    assert "1 waiting" in body and "1 failed" in body
    assert "w***@example.com" in body and "f***@example.com" in body
    assert "waiting.person" not in body and "failed.person" not in body
    assert "reset_password" in body and "550 5.1.1 No such mailbox" in body
    assert body.count("Send again") == 1  # only a failed message has the button


def test_send_again_queues_a_failed_message_afresh(app, client, admin):
    message_id = queue_mail(app, "ann@example.com")
    fail(app, message_id, "550 no")
    signed_in(client, admin)
    response = submit(client, f"/admin/mail/{message_id}/send-again", follow=True)
    assert "queued again" in text_of(response)
    with app.app_context():
        row = db.session.scalar(select(OutboxMessage))
        assert (row.status, row.attempts) == (MailStatus.WAITING, 0)


def test_send_again_without_the_csrf_token_changes_nothing(app, client, admin):
    message_id = queue_mail(app, "ann@example.com")
    fail(app, message_id, "550 no")
    signed_in(client, admin)
    response = client.post(f"/admin/mail/{message_id}/send-again")
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage.status)) == MailStatus.FAILED


def test_send_again_for_a_message_that_did_not_fail_says_so(app, client, admin):
    message_id = queue_mail(app, "ann@example.com")
    signed_in(client, admin)
    response = submit(client, f"/admin/mail/{message_id}/send-again", follow=True)
    assert "No failed message with this id" in text_of(response)


def test_the_mail_page_needs_an_admin(client, user):
    response = client.get("/admin/mail")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
