"""/api/users: profiles, who may see the email, who may change what, and deletion."""

import pytest

from app.errors import Conflict
from app.extensions import db
from app.models import Role, User
from app.services import users as users_service
from tests.helpers import PASSWORD, assert_problem


def login(client, email, password=PASSWORD):
    return client.post("/api/auth/login", json={"email": email, "password": password})


def patch(client, actor, target_id, **changes):
    return client.patch(f"/api/users/{target_id}", json=changes, headers=actor.headers)


# ---- reading -------------------------------------------------------------------


def test_me_returns_the_caller_with_their_email(client, user):
    response = client.get("/api/users/me", headers=user.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == user.id
    assert body["email"] == user.email
    assert "password_hash" not in body and "password" not in body


def test_list_is_a_json_array_of_users(client, make_user):
    people = [make_user() for _ in range(3)]
    response = client.get("/api/users", headers=people[0].headers)
    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body, list)
    assert [u["id"] for u in body] == [p.id for p in people]


def test_list_shows_email_only_for_the_caller(client, make_user):
    me, other = make_user(), make_user()
    body = client.get("/api/users", headers=me.headers).get_json()
    by_id = {u["id"]: u for u in body}
    assert by_id[me.id]["email"] == me.email
    assert "email" not in by_id[other.id]
    assert other.email not in client.get("/api/users", headers=me.headers).get_data(as_text=True)


def test_list_shows_every_email_to_admins(client, admin, make_user):
    others = [make_user(), make_user()]
    body = client.get("/api/users", headers=admin.headers).get_json()
    assert {u["email"] for u in body} == {admin.email, *(p.email for p in others)}


def test_list_needs_a_token(client):
    assert_problem(client.get("/api/users"), 401)


def test_get_user_hides_email_from_others(client, make_user):
    me, other = make_user(), make_user()
    response = client.get(f"/api/users/{other.id}", headers=me.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == other.id
    assert "email" not in body


def test_get_user_shows_email_to_themself_and_admins(client, admin, user):
    assert client.get(f"/api/users/{user.id}", headers=user.headers).get_json()["email"] == user.email
    assert client.get(f"/api/users/{user.id}", headers=admin.headers).get_json()["email"] == user.email


PUBLIC = {"id", "name", "created_at", "followers_count", "following_count"}
ACCOUNT = PUBLIC | {"email", "age", "role", "is_active", "email_verified", "updated_at"}


def test_others_see_only_id_name_created_at_and_the_follow_counts(client, admin, make_user):
    """Not whether someone is an admin, how old they are or whether they are deactivated."""
    me, other = make_user(), make_user(age=40)
    for person in (admin, other):
        seen = client.get(f"/api/users/{person.id}", headers=me.headers).get_json()
        assert set(seen) == PUBLIC | {"followed_by_me"}
    listed = {u["id"]: u for u in client.get("/api/users", headers=me.headers).get_json()}
    assert set(listed[admin.id]) == set(listed[other.id]) == PUBLIC
    assert set(listed[me.id]) == ACCOUNT
    assert "admin" not in client.get("/api/users", headers=me.headers).get_data(as_text=True)


def test_the_user_themself_and_admins_see_the_whole_account(client, admin, make_user):
    person = make_user(age=40)
    own = client.get(f"/api/users/{person.id}", headers=person.headers).get_json()
    assert set(own) == ACCOUNT and own["age"] == 40 and own["role"] == "user" and own["is_active"] is True
    assert set(client.get("/api/users/me", headers=person.headers).get_json()) == ACCOUNT
    assert client.get(f"/api/users/{person.id}", headers=admin.headers).get_json() == {**own, "followed_by_me": False}
    assert all(set(u) == ACCOUNT for u in client.get("/api/users", headers=admin.headers).get_json())


def test_a_change_answers_the_user_as_the_changers_next_read_shows_them(client, admin, make_user):
    """Body and ETag alike: an admin's answer has `followed_by_me`, as their read of that user has;
    the user's own has not."""
    person = make_user()
    changed = patch(client, admin, person.id, age=41)
    read = client.get(f"/api/users/{person.id}", headers=admin.headers)
    assert changed.get_json() == read.get_json() and changed.headers["ETag"] == read.headers["ETag"]
    own = patch(client, person, person.id, age=42)
    read = client.get(f"/api/users/{person.id}", headers=person.headers)
    assert own.get_json() == read.get_json() and "followed_by_me" not in own.get_json()


def test_get_unknown_user_is_404(client, user):
    assert_problem(client.get("/api/users/999999", headers=user.headers), 404)


def test_get_user_with_non_numeric_id_is_404(client, user):
    assert_problem(client.get("/api/users/abc", headers=user.headers), 404)


def test_get_user_needs_a_token(client, user):
    assert_problem(client.get(f"/api/users/{user.id}"), 401)


# ---- changing ------------------------------------------------------------------


def test_user_changes_their_own_name_age_and_email(client, user):
    response = patch(client, user, user.id, name="New Name", age=44, email="New@Example.com",
                     current_password=PASSWORD)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["name"], body["age"], body["email"]) == ("New Name", 44, "new@example.com")
    again = client.get("/api/users/me", headers=user.headers).get_json()
    assert (again["name"], again["age"], again["email"]) == ("New Name", 44, "new@example.com")
    assert login(client, "new@example.com").status_code == 200


def test_user_clears_their_age(client, make_user):
    person = make_user(age=30)
    assert patch(client, person, person.id, age=None).get_json()["age"] is None


def test_empty_patch_changes_nothing(client, user):
    before = client.get("/api/users/me", headers=user.headers).get_json()
    response = patch(client, user, user.id)
    assert response.status_code == 200
    assert response.get_json()["name"] == before["name"]


def test_admin_changes_another_user(client, admin, user):
    response = patch(client, admin, user.id, name="Renamed By Admin")
    assert response.status_code == 200
    assert response.get_json()["name"] == "Renamed By Admin"
    assert response.get_json()["email"] == user.email


def test_user_cannot_change_another_user(client, make_user):
    me, other = make_user(), make_user()
    assert_problem(patch(client, me, other.id, name="Hijacked"), 403)
    assert client.get(f"/api/users/{other.id}", headers=other.headers).get_json()["name"] != "Hijacked"


def test_patch_unknown_user_is_404(client, admin):
    assert_problem(patch(client, admin, 999999, name="Nobody"), 404)


def test_patch_needs_a_token(client, user):
    assert_problem(client.patch(f"/api/users/{user.id}", json={"name": "Anon"}), 401)


@pytest.mark.parametrize(("field", "value"), [("role", "admin"), ("is_active", False), ("is_active", True)])
def test_only_an_admin_may_change_role_or_is_active(client, user, field, value):
    assert_problem(patch(client, user, user.id, **{field: value}), 403)
    me = client.get("/api/users/me", headers=user.headers).get_json()
    assert me["role"] == "user" and me["is_active"] is True


def test_admin_promotes_a_user_who_then_has_admin_rights(client, admin, make_user):
    promoted, victim = make_user(), make_user()
    response = patch(client, admin, promoted.id, role="admin")
    assert response.status_code == 200
    assert response.get_json()["role"] == "admin"
    assert client.delete(f"/api/users/{victim.id}", headers=promoted.headers).status_code == 401  # session ended
    token = login(client, promoted.email).get_json()["access_token"]
    assert client.delete(f"/api/users/{victim.id}", headers={"Authorization": f"Bearer {token}"}).status_code == 204


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "superuser"),
        ("role", 1),
        ("is_active", "yes"),
        ("is_active", 0),
        ("is_active", 1),
        ("is_active", "true"),
        ("is_active", None),
        ("name", "A"),
        ("name", "x" * 101),
        ("age", 17),
        ("age", "40"),
        ("email", "nope"),
        ("email", "a" * 64 + "@" + ("b" * 60 + ".") * 4 + "com"),
        ("name", "Bad\u0000Name"),
        ("id", 5),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("password_hash", "x"),
    ],
)
def test_invalid_patch_is_422_naming_the_field(client, admin, user, field, value):
    body = assert_problem(patch(client, admin, user.id, **{field: value}), 422)
    assert field in body["errors"]


def test_lone_surrogate_in_patch_is_422(client, user):
    response = client.patch(
        f"/api/users/{user.id}",
        data=b'{"name": "Bad\\udfffName"}',
        content_type="application/json",
        headers=user.headers,
    )
    assert "name" in assert_problem(response, 422)["errors"]


def test_malformed_and_non_json_patch_bodies(client, user):
    url = f"/api/users/{user.id}"
    assert_problem(client.patch(url, data=b"{", content_type="application/json", headers=user.headers), 400)
    assert_problem(client.patch(url, data=b"name=x", content_type="text/plain", headers=user.headers), 415)


# ---- passwords -----------------------------------------------------------------


def test_user_changes_password_with_the_current_one(client, user):
    response = patch(client, user, user.id, password="N3wPassword", current_password=PASSWORD)
    assert response.status_code == 200
    assert "password" not in response.get_data(as_text=True)
    assert login(client, user.email, "N3wPassword").status_code == 200
    assert_problem(login(client, user.email), 401)


def test_password_change_without_current_password_is_422(client, user):
    body = assert_problem(patch(client, user, user.id, password="N3wPassword"), 422)
    assert "current_password" in body["errors"]
    assert login(client, user.email).status_code == 200


def test_password_change_with_wrong_current_password_is_422(client, user):
    body = assert_problem(patch(client, user, user.id, password="N3wPassword", current_password="Wr0ngPassword"), 422)
    assert "current_password" in body["errors"]
    assert login(client, user.email).status_code == 200


def test_password_change_with_overlong_current_password_is_422_not_500(client, user):
    response = patch(client, user, user.id, password="N3wPassword", current_password="A1" + "x" * 98)
    assert "current_password" in assert_problem(response, 422)["errors"]


def test_current_password_alone_is_422(client, user):
    assert "current_password" in assert_problem(patch(client, user, user.id, current_password=PASSWORD), 422)["errors"]


@pytest.mark.parametrize("password", ["short1A", "nouppercase1", "NoDigitHere", "A1" + "é" * 36])
def test_new_password_follows_the_password_rules(client, user, password):
    body = assert_problem(patch(client, user, user.id, password=password, current_password=PASSWORD), 422)
    assert "password" in body["errors"]


def test_admin_sets_a_password_without_the_current_one(client, admin, user):
    assert patch(client, admin, user.id, password="Adm1nChosen").status_code == 200
    assert login(client, user.email, "Adm1nChosen").status_code == 200


# ---- email conflicts -----------------------------------------------------------


def test_changing_email_to_one_already_taken_is_409(client, make_user):
    me, other = make_user(), make_user()
    assert_problem(patch(client, me, me.id, email=other.email.upper(), current_password=PASSWORD), 409)
    assert client.get("/api/users/me", headers=me.headers).get_json()["email"] == me.email


def test_keeping_your_own_email_is_not_a_conflict(client, user):
    assert patch(client, user, user.id, email=user.email.upper()).status_code == 200


# ---- deactivation --------------------------------------------------------------


def test_deactivation_makes_existing_tokens_fail_at_once(client, admin, user):
    assert client.get("/api/users/me", headers=user.headers).status_code == 200
    response = patch(client, admin, user.id, is_active=False)
    assert response.status_code == 200
    assert response.get_json()["is_active"] is False
    assert_problem(client.get("/api/users/me", headers=user.headers), 401)
    assert_problem(client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {user.refresh_token}"}), 401)
    assert_problem(login(client, user.email), 401)


def test_reactivated_user_can_log_in_again(client, admin, make_user):
    person = make_user(is_active=False)
    assert patch(client, admin, person.id, is_active=True).status_code == 200
    assert login(client, person.email).status_code == 200


# ---- deletion ------------------------------------------------------------------


def test_admin_deletes_a_user_and_their_posts(client, admin, make_user, make_post):
    author, reader = make_user(), make_user()
    post_id = make_post(author)
    response = client.delete(f"/api/users/{author.id}", headers=admin.headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_problem(client.get(f"/api/users/{author.id}", headers=reader.headers), 404)
    assert_problem(client.get(f"/api/posts/{post_id}"), 404)
    assert_problem(client.get(f"/api/users/{author.id}/posts"), 404)
    assert client.get("/api/posts").get_json() == []


def test_deleting_a_user_keeps_other_users_posts(client, admin, make_user, make_post):
    doomed, survivor = make_user(), make_user()
    make_post(doomed)
    kept = make_post(survivor)
    assert client.delete(f"/api/users/{doomed.id}", headers=admin.headers).status_code == 204
    assert [p["id"] for p in client.get("/api/posts").get_json()] == [kept]


def test_user_cannot_delete_users(client, make_user):
    me, other = make_user(), make_user()
    assert_problem(client.delete(f"/api/users/{other.id}", headers=me.headers), 403)
    assert_problem(client.delete(f"/api/users/{me.id}", headers=me.headers), 403)
    assert client.get(f"/api/users/{other.id}", headers=me.headers).status_code == 200


def test_delete_needs_a_token(client, user):
    assert_problem(client.delete(f"/api/users/{user.id}"), 401)


def test_delete_unknown_user_is_404(client, admin):
    assert_problem(client.delete("/api/users/999999", headers=admin.headers), 404)


# ---- admin rules ---------------------------------------------------------------


def test_admin_cannot_demote_themself(client, make_user):
    admin, _other_admin = make_user(Role.ADMIN), make_user(Role.ADMIN)
    assert_problem(patch(client, admin, admin.id, role="user"), 409)
    assert client.get("/api/users/me", headers=admin.headers).get_json()["role"] == "admin"


def test_admin_cannot_deactivate_themself(client, admin):
    assert_problem(patch(client, admin, admin.id, is_active=False), 409)
    assert client.get("/api/users/me", headers=admin.headers).status_code == 200


def test_admin_cannot_delete_themself(client, admin):
    assert_problem(client.delete(f"/api/users/{admin.id}", headers=admin.headers), 409)
    assert client.get("/api/users/me", headers=admin.headers).status_code == 200


def test_admin_may_patch_their_own_profile_and_keep_their_role(client, admin):
    response = patch(client, admin, admin.id, name="Chief", role="admin", is_active=True)
    assert response.status_code == 200
    assert response.get_json()["name"] == "Chief"


def test_admin_may_demote_deactivate_and_delete_another_admin(client, make_user):
    admin, second, third = make_user(Role.ADMIN), make_user(Role.ADMIN), make_user(Role.ADMIN)
    assert patch(client, admin, second.id, role="user").get_json()["role"] == "user"
    assert patch(client, admin, third.id, is_active=False).get_json()["is_active"] is False
    assert client.delete(f"/api/users/{second.id}", headers=admin.headers).status_code == 204


def test_last_active_admin_cannot_be_removed(app, make_user):
    """Through the API the acting admin is always active, so this guard is reached only when the
    actor is not an active admin any more (e.g. deactivated while acting); the rule still holds."""
    acting, last = make_user(Role.ADMIN), make_user(Role.ADMIN)
    with app.app_context():
        actor = db.session.get(User, acting.id)
        actor.is_active = False
        db.session.commit()
        target = db.session.get(User, last.id)
        for change in (
            lambda: users_service.set_role(actor, target, Role.USER),
            lambda: users_service.set_active(actor, target, False),
            lambda: users_service.delete_user(actor, target),
        ):
            with pytest.raises(Conflict, match="last active admin"):
                change()
        assert db.session.get(User, last.id).is_admin


def _every_row(app) -> dict[str, list]:
    with app.app_context():
        return {table.name: db.session.execute(table.select().order_by(*table.primary_key.columns)).all()
                for table in db.metadata.sorted_tables}


@pytest.mark.parametrize("path", ["/api/users/me", "/api/users", "/api/users/{id}"])
def test_authenticated_reads_do_not_write_to_the_database(app, client, user, path):
    before = _every_row(app)
    assert client.get(path.format(id=user.id), headers=user.headers).status_code == 200
    assert _every_row(app) == before
