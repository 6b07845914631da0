"""Admin forms carry the version of the row the page showed: acting on a stale page is
refused with a message, as the API's If-Match is, never a silent overwrite."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import Post, Role, User
from tests.admin_support import signed_in, submit, text_of

STALE = "changed by someone else after this page was loaded"


@pytest.fixture
def admin_client(client, admin):
    return signed_in(client, admin)


def shown_version(html: str, action: str) -> str:
    """The version field of the form posting to `action`, as the browser would submit it."""
    form = re.search(rf'<form[^>]*action="{re.escape(action)}".*?</form>', html, re.S)
    assert form, f"no form for {action}"
    version = re.search(r'name="version" value="(\d+)"', form.group(0))
    assert version, "the form carries no version"
    return version.group(1)


def test_a_role_change_from_a_stale_page_is_refused_with_a_message(app, admin_client, make_user):
    person = make_user()
    action = f"/admin/users/{person.id}/role"
    version = shown_version(text_of(admin_client.get(f"/admin/users/{person.id}")), action)
    with app.app_context():
        db.session.get(User, person.id).name = "Changed Meanwhile"
        db.session.commit()
    response = submit(admin_client, action, {"role": "admin", "version": version}, follow=True)
    assert STALE in text_of(response)
    with app.app_context():
        assert db.session.get(User, person.id).role is Role.USER


def test_a_change_from_a_current_page_goes_through(app, admin_client, make_user):
    person = make_user()
    html = text_of(admin_client.get("/admin/users"))
    for action, data in ((f"/admin/users/{person.id}/active", {"active": "0"}),):
        version = shown_version(html, action)
        response = submit(admin_client, action, {**data, "version": version}, follow=True)
        assert STALE not in text_of(response)
    with app.app_context():
        assert db.session.get(User, person.id).is_active is False


def test_deleting_a_post_changed_since_the_confirmation_page_is_refused(app, admin_client, user, make_post):
    post_id = make_post(user, "Before")
    action = f"/admin/posts/{post_id}/delete"
    version = shown_version(text_of(admin_client.get(action)), action)
    with app.app_context():
        db.session.get(Post, post_id).title = "Edited meanwhile"
        db.session.commit()
    response = submit(admin_client, action, {"version": version}, follow=True)
    assert STALE in text_of(response)
    with app.app_context():
        assert db.session.get(Post, post_id) is not None
    fresh = shown_version(text_of(admin_client.get(action)), action)
    submit(admin_client, action, {"version": fresh})
    with app.app_context():
        assert db.session.get(Post, post_id) is None


def test_deleting_a_user_changed_since_the_confirmation_page_is_refused(app, admin_client, make_user):
    person = make_user()
    action = f"/admin/users/{person.id}/delete"
    version = shown_version(text_of(admin_client.get(action)), action)
    with app.app_context():
        db.session.get(User, person.id).age = 33
        db.session.commit()
    response = submit(admin_client, action, {"version": version}, follow=True)
    assert STALE in text_of(response)
    with app.app_context():
        assert db.session.get(User, person.id) is not None
