"""Sessions that end: refresh-token families, logout, logout-all, and what ends every session.

Reproductions 1, 2, 3 and 5 of issue 10, through HTTP.
"""

from __future__ import annotations

import pytest

from app.models import Role
from tests.helpers import PASSWORD, assert_problem, bearer

NEW_PASSWORD = "N3wPassword"



def login(client, email: str, password: str = PASSWORD) -> dict:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.get_json()


def refresh(client, token: str):
    return client.post("/api/auth/refresh", headers=bearer(token))


def me(client, token: str):
    return client.get("/api/users/me", headers=bearer(token))


def change_own_password(client, person, access_token: str | None = None):
    return client.patch(f"/api/users/{person.id}", headers=bearer(access_token or person.access_token),
                        json={"password": NEW_PASSWORD, "current_password": person.password})


def assert_session_ended(client, pair: dict) -> None:
    assert_problem(me(client, pair["access_token"]), 401)
    assert_problem(refresh(client, pair["refresh_token"]), 401)


def pair_of(person) -> dict:
    return {"access_token": person.access_token, "refresh_token": person.refresh_token}


# ---- reproduction 1: a stolen refresh token ------------------------------------


def test_reusing_a_rotated_refresh_token_ends_the_whole_family(client, user):
    """The thief refreshes first; when the owner's (now spent) token comes back, both are cut off."""
    stolen = user.refresh_token
    thief = refresh(client, stolen).get_json()
    assert me(client, thief["access_token"]).status_code == 200

    body = assert_problem(refresh(client, stolen), 401)
    assert "already used" in body["detail"]
    assert_session_ended(client, thief)
    assert_problem(me(client, user.access_token), 401)


def test_reusing_a_spent_token_of_the_owner_ends_the_family_the_owner_went_on_with(client, user):
    owner = refresh(client, user.refresh_token).get_json()
    assert_problem(refresh(client, user.refresh_token), 401)  # a replay of the spent token
    assert_session_ended(client, owner)


def test_the_owner_cuts_off_a_thief_by_changing_password_and_logging_out(client, user):
    thief = refresh(client, user.refresh_token).get_json()  # the thief now holds the live family
    fresh = login(client, user.email)
    changed = change_own_password(client, user, fresh["access_token"])
    assert changed.status_code == 200, changed.text
    new_pair = changed.get_json()["tokens"]
    assert client.post("/api/auth/logout", headers=bearer(new_pair["access_token"])).status_code == 204
    assert_session_ended(client, thief)
    assert_session_ended(client, new_pair)


def test_a_refresh_token_is_refused_after_its_session_ends_even_if_never_used(client, user):
    other = login(client, user.email)
    assert client.post("/api/auth/logout-all", headers=user.headers).status_code == 204
    assert_session_ended(client, other)


def test_rotation_keeps_one_session_and_other_sessions_apart(client, user):
    second = login(client, user.email)
    rotated = refresh(client, user.refresh_token).get_json()
    assert me(client, rotated["access_token"]).status_code == 200
    assert client.post("/api/auth/logout", headers=bearer(rotated["access_token"])).status_code == 204
    assert_session_ended(client, rotated)
    assert me(client, second["access_token"]).status_code == 200
    assert refresh(client, second["refresh_token"]).status_code == 200


# ---- reproduction 2: a password change, deactivation, role change ---------------


def test_changing_ones_own_password_ends_every_session_and_answers_with_a_new_pair(client, user):
    other_device = login(client, user.email)
    response = change_own_password(client, user)
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert set(body["tokens"]) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert_session_ended(client, pair_of(user))
    assert_session_ended(client, other_device)
    assert me(client, body["tokens"]["access_token"]).status_code == 200
    assert refresh(client, body["tokens"]["refresh_token"]).status_code == 200
    assert login(client, user.email, NEW_PASSWORD)


def test_a_password_set_by_an_admin_ends_every_session_of_the_user(client, admin, user):
    response = client.patch(f"/api/users/{user.id}", headers=admin.headers, json={"password": NEW_PASSWORD})
    assert response.status_code == 200, response.text
    assert "tokens" not in response.get_json()
    assert_session_ended(client, pair_of(user))
    assert me(client, admin.access_token).status_code == 200


def test_other_changes_keep_the_sessions(client, user):
    response = client.patch(f"/api/users/{user.id}", headers=user.headers, json={"name": "Renamed"})
    assert response.status_code == 200
    assert "tokens" not in response.get_json()
    assert me(client, user.access_token).status_code == 200
    assert refresh(client, user.refresh_token).status_code == 200


def test_a_refused_password_change_ends_nothing(client, user):
    response = client.patch(f"/api/users/{user.id}", headers=user.headers,
                            json={"password": NEW_PASSWORD, "current_password": "Wr0ngPassword"})
    assert "current_password" in assert_problem(response, 422)["errors"]
    assert me(client, user.access_token).status_code == 200


def test_deactivation_ends_sessions_and_reactivation_does_not_revive_them(client, admin, user):
    for active in (False, True):
        response = client.patch(f"/api/users/{user.id}", headers=admin.headers, json={"is_active": active})
        assert response.status_code == 200
    assert_session_ended(client, pair_of(user))
    assert login(client, user.email)  # the account itself works again


@pytest.mark.parametrize("new_role", [Role.ADMIN, Role.USER])
def test_a_role_change_ends_every_session_of_the_user(client, make_user, new_role):
    actor = make_user(Role.ADMIN)
    target = make_user(Role.USER if new_role is Role.ADMIN else Role.ADMIN)
    response = client.patch(f"/api/users/{target.id}", headers=actor.headers, json={"role": new_role.value})
    assert response.status_code == 200, response.text
    assert_session_ended(client, pair_of(target))
    assert me(client, actor.access_token).status_code == 200


def test_setting_the_same_role_again_keeps_the_sessions(client, admin, user):
    response = client.patch(f"/api/users/{user.id}", headers=admin.headers, json={"role": "user"})
    assert response.status_code == 200
    assert me(client, user.access_token).status_code == 200


# ---- logout-all -----------------------------------------------------------------


def test_logout_all_is_204_and_ends_every_session_of_the_caller_only(client, make_user):
    user, other = make_user(), make_user()
    second = login(client, user.email)
    response = client.post("/api/auth/logout-all", headers=user.headers)
    assert response.status_code == 204 and response.get_data() == b""
    assert_session_ended(client, pair_of(user))
    assert_session_ended(client, second)
    assert me(client, other.access_token).status_code == 200
    assert login(client, user.email)


def test_logout_all_needs_an_access_token(client, user):
    assert_problem(client.post("/api/auth/logout-all"), 401)
    assert_problem(client.post("/api/auth/logout-all", headers=bearer(user.refresh_token)), 401)


# ---- reproduction 5: admins prove their current password -------------------------


def test_an_admin_needs_the_current_password_to_change_their_own(client, admin):
    response = client.patch(f"/api/users/{admin.id}", headers=admin.headers, json={"password": NEW_PASSWORD})
    assert "current_password" in assert_problem(response, 422)["errors"]
    wrong = client.patch(f"/api/users/{admin.id}", headers=admin.headers,
                         json={"password": NEW_PASSWORD, "current_password": "Wr0ngPassword"})
    assert "current_password" in assert_problem(wrong, 422)["errors"]
    assert login(client, admin.email)  # the old password still works
    assert change_own_password(client, admin).status_code == 200


# ---- shared by every worker and host ----------------------------------------------


def test_a_session_ended_through_one_app_is_refused_by_another(client, user, make_app):
    other_client = make_app().test_client()
    assert me(other_client, user.access_token).status_code == 200
    assert client.post("/api/auth/logout-all", headers=user.headers).status_code == 204
    assert_problem(me(other_client, user.access_token), 401)
    assert_problem(refresh(other_client, user.refresh_token), 401)


# ---- the cost of the check ----------------------------------------------------------


def test_resolving_a_token_is_one_statement_that_joins_the_session_and_the_user(client, user, sql_statements):
    """Session alive, account active, user loaded: one SELECT (issue 15 builds on this)."""
    sql_statements.clear()
    assert me(client, user.access_token).status_code == 200
    assert len(sql_statements) == 1, sql_statements  # and nothing else: tests/api/test_authenticated_reads.py
