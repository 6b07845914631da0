"""Stored hashes follow BCRYPT_ROUNDS (issue 10, reproduction 9)."""

from __future__ import annotations

import bcrypt

from app.extensions import db
from app.models import User
from app.security import _dummy_hash, needs_rehash
from tests.helpers import PASSWORD


def _stored_cost(app, user_id: int) -> int:
    with app.app_context():
        return int(db.session.get(User, user_id).password_hash.split("$")[2])


def test_a_login_rehashes_at_the_configured_cost(app, make_app, user):
    """Hashes made at another cost used to stay forever, so unknown emails (the dummy hash at the
    new cost) and known ones took measurably different times: an enumeration oracle."""
    assert _stored_cost(app, user.id) == 4
    raised = make_app(BCRYPT_ROUNDS=5).test_client()
    assert raised.post("/api/auth/login", json={"email": user.email, "password": PASSWORD}).status_code == 200
    assert _stored_cost(app, user.id) == 5
    assert raised.post("/api/auth/login", json={"email": user.email, "password": PASSWORD}).status_code == 200


def test_a_failed_login_changes_no_hash(app, make_app, user):
    raised = make_app(BCRYPT_ROUNDS=5).test_client()
    response = raised.post("/api/auth/login", json={"email": user.email, "password": "Wr0ngPassword"})
    assert response.status_code == 401
    assert _stored_cost(app, user.id) == 4


def test_lowering_the_cost_rehashes_too(app, make_app, make_user):
    person = make_user()
    with app.app_context():
        db.session.get(User, person.id).password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(6)).decode()
        db.session.commit()
    response = app.test_client().post("/api/auth/login", json={"email": person.email, "password": PASSWORD})
    assert response.status_code == 200
    assert _stored_cost(app, person.id) == 4


def test_the_dummy_hash_for_unknown_emails_uses_the_current_cost(app, make_app):
    raised = make_app(BCRYPT_ROUNDS=5)
    with raised.app_context():
        assert _dummy_hash().split(b"$")[2] == b"05"
        assert not needs_rehash(_dummy_hash().decode())
