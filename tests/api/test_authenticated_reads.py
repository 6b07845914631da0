"""Authenticated requests as cheap as public ones (issue 15).

Resolving a bearer token (session alive, account active) is one statement on the read
path's autocommit connection: no pre-ping, no BEGIN/ROLLBACK, nothing from the main pool.
Authenticated reads make that one statement in all; writes open their transaction only
to write. Revocation still holds at the next request (tests/api/test_account_sessions.py).
"""

from __future__ import annotations

import pytest
from flask_jwt_extended import create_access_token
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.helpers import assert_problem


def _only_the_token_statement(statements: list[str]) -> None:
    assert len(statements) == 1, statements


def test_me_is_one_statement_on_the_read_path(client, user, sql_statements):
    client.get("/api/users/me", headers=user.headers)  # the pools have their connections now
    sql_statements.clear()
    response = client.get("/api/users/me", headers=user.headers)
    assert response.status_code == 200
    assert response.get_json()["email"] == user.email
    _only_the_token_statement(sql_statements)


def test_another_users_profile_is_the_token_statement_alone(client, user, make_user, sql_statements):
    """The statement that resolves the token reads the profile and whether the caller follows them."""
    other = make_user(name="Other Person")
    client.put(f"/api/users/{other.id}/follow", headers=user.headers)
    sql_statements.clear()
    response = client.get(f"/api/users/{other.id}", headers=user.headers)
    assert response.status_code == 200
    assert response.get_json()["name"] == "Other Person"
    assert response.get_json()["followed_by_me"] is True
    assert response.get_json()["followers_count"] == 1
    _only_the_token_statement(sql_statements)


def test_ones_own_profile_by_id_is_the_token_statement_alone(client, user, sql_statements):
    sql_statements.clear()
    response = client.get(f"/api/users/{user.id}", headers=user.headers)
    assert response.status_code == 200
    assert response.get_json()["email"] == user.email and "followed_by_me" not in response.get_json()
    _only_the_token_statement(sql_statements)


def test_a_profile_says_whether_the_caller_follows_them_right_after_an_unfollow(client, user, make_user):
    other = make_user()
    assert client.put(f"/api/users/{other.id}/follow", headers=user.headers).status_code == 204
    assert client.get(f"/api/users/{other.id}", headers=user.headers).get_json()["followed_by_me"] is True
    assert client.delete(f"/api/users/{other.id}/follow", headers=user.headers).status_code == 204
    assert client.get(f"/api/users/{other.id}", headers=user.headers).get_json()["followed_by_me"] is False


@pytest.mark.parametrize("user_id", [999_999, 2**31, 10**18])
def test_an_unknown_user_is_404(client, user, user_id):
    assert_problem(client.get(f"/api/users/{user_id}", headers=user.headers), 404)


def test_an_ended_session_is_refused_even_when_the_read_asks_for_another_user(client, user, make_user):
    other = make_user()
    assert client.post("/api/auth/logout", headers=user.headers).status_code == 204
    assert_problem(client.get(f"/api/users/{other.id}", headers=user.headers), 401)
    assert_problem(client.get(f"/api/users/{user.id}", headers=user.headers), 401)


def test_a_token_naming_anothers_session_is_refused_even_when_reading_that_user(client, app, user, make_user):
    """The session must be the subject's own, whichever users the statement reads."""
    other = make_user()
    with app.test_request_context():
        sid = _session_of(app, other.id)
        forged = create_access_token(identity=str(user.id), additional_claims={"sid": sid})
    assert_problem(client.get(f"/api/users/{other.id}", headers={"Authorization": f"Bearer {forged}"}), 401)
    assert_problem(client.get("/api/users/me", headers={"Authorization": f"Bearer {forged}"}), 401)


def _session_of(app, user_id: int) -> str:
    with app.app_context():
        return db.session.execute(text("SELECT id FROM sessions WHERE user_id = :u"), {"u": user_id}).scalar_one()


def test_an_authenticated_post_list_is_one_statement(client, user, sql_statements):
    client.post("/api/posts", json={"title": "t", "body": "b"}, headers=user.headers)
    sql_statements.clear()
    response = client.get("/api/posts", headers=user.headers)
    assert response.status_code == 200 and len(response.get_json()) == 1
    assert len(sql_statements) == 1, sql_statements


def test_a_write_is_the_token_statement_and_its_insert_in_one_transaction(client, user, sql_statements):
    sql_statements.clear()
    response = client.post("/api/posts", json={"title": "t", "body": "b"}, headers=user.headers)
    assert response.status_code == 201
    assert response.get_json()["author"] == {"id": user.id, "name": response.get_json()["author"]["name"]}
    assert len(sql_statements) == 2, sql_statements  # the token's statement, then the insert
    assert client.get("/api/posts").get_json()[0]["id"] == response.get_json()["id"]


def test_changing_ones_own_account_still_works_with_the_user_read_with_the_token(client, user):
    response = client.patch(f"/api/users/{user.id}", json={"name": "Renamed"}, headers=user.headers)
    assert response.status_code == 200 and response.get_json()["name"] == "Renamed"
    assert client.get("/api/users/me", headers=user.headers).get_json()["name"] == "Renamed"


def test_a_deactivated_user_is_refused_at_the_next_request(client, admin, user):
    assert client.patch(f"/api/users/{user.id}", json={"is_active": False}, headers=admin.headers).status_code == 200
    assert_problem(client.get("/api/users/me", headers=user.headers), 401)


# ---- PostgreSQL restarts ---------------------------------------------------------------


@pytest.fixture
def postgresql(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs a database server that can drop connections")


@pytest.mark.usefixtures("postgresql")
def test_resolving_a_token_on_a_connection_the_server_dropped_succeeds_on_a_new_one(app, client, user):
    assert client.get("/api/users/me", headers=user.headers).status_code == 200
    with app.app_context(), db.engine.connect() as killer:
        killed = killer.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).scalar_one()
    assert killed >= 1
    assert client.get("/api/users/me", headers=user.headers).status_code == 200


def test_authenticated_requests_are_503_problem_json_while_the_server_is_down():
    down = "postgresql://postgres@127.0.0.1:9/app_test"  # nothing listens on the discard port
    app = create_app({"APP_ENV": "testing", "SQLALCHEMY_DATABASE_URI": down, "DB_CONNECT_TIMEOUT": 1})
    with app.test_request_context():
        token = create_access_token(identity="1", additional_claims={"sid": "a" * 32})
    client = app.test_client()
    for path in ["/api/users/me", "/api/users/2"]:
        response = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 503)
        assert response.headers["Retry-After"] == "5"


def test_the_user_list_is_read_on_the_read_path_beside_the_token(
        client, user, make_user, sql_statements):
    """Two statements, both on the read pool: the token's, and the page of users."""
    make_user()
    sql_statements.clear()
    response = client.get("/api/users", headers=user.headers)
    assert response.status_code == 200 and len(response.get_json()) == 2
    assert len(sql_statements) == 2, sql_statements
