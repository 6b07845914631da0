"""Ids are never reused, on either database: a deleted user's tokens never sign in as someone new.

SQLite reuses the largest rowid after a delete unless the table is AUTOINCREMENT
(migration 0003); PostgreSQL's sequences never go back.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.helpers import PASSWORD, ROOT, assert_problem, bearer


def register(client, email: str):
    response = client.post("/api/users", json={"email": email, "name": "Some One", "password": PASSWORD})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def login(client, email: str) -> dict:
    return client.post("/api/auth/login", json={"email": email, "password": PASSWORD}).get_json()



def test_a_deleted_users_tokens_do_not_sign_in_as_the_next_new_user(client, admin):
    gone_id = register(client, "gone@example.com")
    tokens = login(client, "gone@example.com")
    assert client.delete(f"/api/users/{gone_id}", headers=admin.headers).status_code == 204
    new_id = register(client, "new@example.com")
    assert new_id != gone_id
    assert_problem(client.get("/api/users/me", headers=bearer(tokens["access_token"])), 401)
    assert_problem(client.post("/api/posts", json={"title": "t", "body": "b"},
                               headers=bearer(tokens["access_token"])), 401)
    assert_problem(client.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"])), 401)


def test_a_revoked_token_stays_refused_after_its_user_and_revocations_are_gone(client, admin):
    gone_id = register(client, "gone@example.com")
    tokens = login(client, "gone@example.com")
    assert client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]},
                       headers=bearer(tokens["access_token"])).status_code == 204
    assert client.delete(f"/api/users/{gone_id}", headers=admin.headers).status_code == 204  # revocations go too
    register(client, "new@example.com")
    assert_problem(client.get("/api/users/me", headers=bearer(tokens["access_token"])), 401)
    assert_problem(client.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"])), 401)


def test_post_ids_are_not_reused_after_a_delete(client, user):
    def create() -> int:
        return client.post("/api/posts", json={"title": "t", "body": "b"}, headers=user.headers).get_json()["id"]

    first = create()
    assert client.delete(f"/api/posts/{first}", headers=user.headers).status_code == 204
    assert create() > first


STAMPS, NOW = "created_at, updated_at", "'2026-01-01 00:00:00', '2026-01-01 00:00:00'"


def test_migration_0003_keeps_every_row_of_an_existing_sqlite_database(tmp_path):
    """An SQLite database made before AUTOINCREMENT, with data, upgraded in place."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"), revision="0001")
        with db.engine.begin() as connection:
            connection.execute(text(
                f"INSERT INTO users (id, email, name, password_hash, role, is_active, {STAMPS}) VALUES "
                f"(1, 'a@example.com', 'A', 'x', 'admin', 1, {NOW}), (2, 'b@example.com', 'B', 'x', 'user', 1, {NOW})"))
            connection.execute(text(f"INSERT INTO posts (id, author_id, title, body, {STAMPS}) VALUES "
                                    f"(1, 1, 'a', 'b', {NOW}), (2, 2, 'b', 'b', {NOW}), (3, 2, 'c', 'b', {NOW})"))
            connection.execute(text("INSERT INTO revoked_tokens (jti, token_type, user_id, expires_at, revoked_at) "
                                    "VALUES ('j1', 'access', 2, '2099-01-01 00:00:00', '2026-01-01 00:00:00')"))
        upgrade(directory=str(ROOT / "migrations"), revision="0003")  # 0004 replaces revoked_tokens
        with db.engine.begin() as connection:
            assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 2
            assert connection.execute(text("SELECT count(*) FROM posts")).scalar() == 3
            assert connection.execute(text("SELECT count(*) FROM revoked_tokens")).scalar() == 1
            connection.execute(text("DELETE FROM users WHERE id = 2"))  # the cascade still works
            assert connection.execute(text("SELECT count(*) FROM posts")).scalar() == 1
            assert connection.execute(text("SELECT count(*) FROM revoked_tokens")).scalar() == 0
            connection.execute(text(f"INSERT INTO users (email, name, password_hash, {STAMPS}) "
                                    f"VALUES ('c@x.io', 'C', 'x', {NOW})"))
            assert connection.execute(text("SELECT max(id) FROM users")).scalar() == 3
        assert _schema(tmp_path / "old.db").count("AUTOINCREMENT") == 2
        downgrade(directory=str(ROOT / "migrations"), revision="0001")
        assert "AUTOINCREMENT" not in _schema(tmp_path / "old.db")
        with db.engine.begin() as connection:
            assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 2
            assert connection.execute(text("SELECT count(*) FROM posts")).scalar() == 1
        db.engine.dispose()


def _schema(path) -> str:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT group_concat(sql, ';') FROM sqlite_master").fetchone()[0]
