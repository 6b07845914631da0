"""Two admins deactivating each other at the same moment must not leave no admin at all."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.errors import Conflict
from app.extensions import db
from app.models import Role, User
from app.services import users


def test_concurrent_mutual_deactivation_leaves_one_active_admin(app, make_user):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("row locks (SELECT ... FOR UPDATE) exist on PostgreSQL only")
    first, second = make_user(Role.ADMIN), make_user(Role.ADMIN)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def deactivate(actor_id: int, target_id: int) -> None:
        with app.app_context():
            actor, target = db.session.get(User, actor_id), db.session.get(User, target_id)
            barrier.wait()
            try:
                users.set_active(actor, target, False)
                db.session.commit()
                outcomes.append("done")
            except Conflict:
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=deactivate, args=pair)
               for pair in ((first.id, second.id), (second.id, first.id))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["done", "refused"]
    with app.app_context():
        active_admins = db.session.scalar(
            select(func.count()).select_from(User).where(User.role == Role.ADMIN, User.is_active.is_(True)))
    assert active_admins == 1
