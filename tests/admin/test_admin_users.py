"""The users pages: search, filters, keyset pages, and every change through the services' rules."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import delete, func, select, update

from app.errors import Conflict
from app.extensions import db
from app.models import Post, Role, User
from app.pagination import PageRequest
from app.services import users
from tests.admin_support import (
    assert_admin_html,
    page_token,
    pager_link,
    signed_in,
    submit,
    text_of,
)
from tests.helpers import PASSWORD, assert_problem, query_plan, statements_run


@pytest.fixture
def admin_client(client, admin):
    return signed_in(client, admin)


def _user(app, user_id: int) -> User | None:
    with app.app_context():
        user = db.session.get(User, user_id)
        if user is not None:
            db.session.expunge(user)
        return user


def _ids_in(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-user-id="(\d+)"', html)]


def _next_link(html: str) -> str | None:
    match = re.search(r'rel="next" href="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


def _bulk_users(app, count: int, **fields) -> list[int]:
    with app.app_context():
        created = [users.register(email=f"bulk{i}.{fields.get('tag', 'x')}@example.com", name=f"Bulk {i}",
                                  password=PASSWORD) for i in range(count)]
        db.session.commit()
        return [u.id for u in created]


def test_users_page_lists_users_with_their_role_and_status(admin_client, make_user, admin):
    plain = make_user(name="Plain Person")
    gone = make_user(name="Gone Person", is_active=False)
    other_admin = make_user(Role.ADMIN, name="Other Admin")
    body = assert_admin_html(admin_client.get("/admin/users"), 200)
    assert _ids_in(body) == [admin.id, plain.id, gone.id, other_admin.id]
    assert plain.email in body and gone.email in body
    assert "Make admin" in body and "Make user" in body
    assert "Deactivate" in body and "Activate" in body
    assert f'href="/admin/users/{plain.id}/delete"' in body


def test_names_and_emails_are_escaped(admin_client, make_user):
    make_user(name="<script>alert(1)</script>")
    body = text_of(admin_client.get("/admin/users"))
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


@pytest.mark.parametrize(("query", "expected"), [
    ("ann", ["ann"]),             # name, any case
    ("EXAMPLE.ORG", ["bob"]),     # email, any case
    ("zed@", ["zed"]),
    ("%", []),                    # LIKE wildcards are literal
    ("nobody", []),
])
def test_search_matches_email_or_name(admin_client, make_user, query, expected):
    people = {
        "ann": make_user(name="Ann Smith", email="a1@example.com"),
        "bob": make_user(name="Bob Jones", email="bob@example.org"),
        "zed": make_user(name="Zed", email="zed@example.com"),
    }
    body = assert_admin_html(admin_client.get("/admin/users", query_string={"q": query}), 200)
    assert _ids_in(body) == [people[key].id for key in expected]
    if not expected:
        assert "No users match." in body


@pytest.mark.parametrize(("filters", "expected"), [
    ({"role": "admin"}, ["admin", "other_admin"]),
    ({"role": "user"}, ["active_user", "inactive_user"]),
    ({"active": "0"}, ["inactive_user"]),
    ({"active": "1", "role": "user"}, ["active_user"]),
])
def test_filter_by_role_and_status(admin_client, admin, make_user, filters, expected):
    people = {
        "admin": admin,
        "other_admin": make_user(Role.ADMIN),
        "active_user": make_user(),
        "inactive_user": make_user(is_active=False),
    }
    body = assert_admin_html(admin_client.get("/admin/users", query_string=filters), 200)
    assert _ids_in(body) == [people[key].id for key in expected]


@pytest.mark.parametrize("filters", [{"role": "root"}, {"active": "maybe"}, {"q": "a\x00b"}, {"q": "x" * 300}])
def test_bad_filters_are_a_readable_400(admin_client, filters):
    body = assert_admin_html(admin_client.get("/admin/users", query_string=filters), 400)
    assert "field-error" in body


def test_next_links_walk_every_user_once_keeping_the_filters(app, admin_client, monkeypatch):
    monkeypatch.setitem(app.config, "ADMIN_PAGE_SIZE", 3)
    ids = _bulk_users(app, 8)
    _bulk_users(app, 2, tag="other")
    seen: list[int] = []
    path = "/admin/users?q=.x%40"
    pages = 0
    while path:
        body = assert_admin_html(admin_client.get(path), 200)
        seen += _ids_in(body)
        path = _next_link(body)
        pages += 1
        if path:
            query = parse_qs(urlsplit(path).query)
            assert query["q"] == [".x@"] and "cursor" in query
    assert seen == ids
    assert pages == 3


def test_pages_stay_correct_while_users_are_added(app, admin_client, monkeypatch):
    monkeypatch.setitem(app.config, "ADMIN_PAGE_SIZE", 2)
    first_ids = _bulk_users(app, 3)
    first = text_of(admin_client.get("/admin/users", query_string={"q": "bulk"}))
    later_ids = _bulk_users(app, 2, tag="late")
    second = text_of(admin_client.get(_next_link(first)))
    third = text_of(admin_client.get(_next_link(second)))
    assert _ids_in(first) + _ids_in(second) + _ids_in(third) == first_ids + later_ids


def test_a_broken_page_link_is_a_readable_422(admin_client):
    body = assert_admin_html(admin_client.get("/admin/users?cursor=not-a-cursor"), 422)
    assert "page link is invalid" in body


@pytest.mark.parametrize("query", ["before=not-a-cursor", "before=WzJd&cursor=WzFd"])
def test_a_broken_previous_link_is_a_readable_422(admin_client, query):
    body = assert_admin_html(admin_client.get(f"/admin/users?{query}"), 422)
    assert "page link is invalid" in body


PREVIOUS, NEXT = "prev", "next"  # the pager links' rel


def _deactivate(app, *user_ids: int) -> None:
    with app.app_context():
        db.session.execute(update(User).where(User.id.in_(user_ids)).values(is_active=False))
        db.session.commit()


def test_previous_leads_back_to_exactly_the_page_before_keeping_the_filters(app, admin_client, monkeypatch):
    monkeypatch.setitem(app.config, "ADMIN_PAGE_SIZE", 2)
    ids = _bulk_users(app, 9)
    _deactivate(app, ids[1], ids[4], ids[7])  # between the listed ones: a Previous that lost a filter shows them
    listed = [i for i in ids if i not in (ids[1], ids[4], ids[7])]
    first = assert_admin_html(admin_client.get("/admin/users?q=.x%40&active=1"), 200)
    assert pager_link(first, PREVIOUS) is None
    second = assert_admin_html(admin_client.get(pager_link(first, NEXT)), 200)
    third = assert_admin_html(admin_client.get(pager_link(second, NEXT)), 200)
    assert [_ids_in(first), _ids_in(second), _ids_in(third)] == [listed[0:2], listed[2:4], listed[4:6]]
    assert 'rel="prev"' not in first and "\u2039 Previous</a>" in second
    for page in (second, third):
        query = parse_qs(urlsplit(pager_link(page, PREVIOUS)).query)
        assert query["q"] == [".x@"] and query["active"] == ["1"] and "cursor" not in query

    back_to_second = assert_admin_html(admin_client.get(pager_link(third, PREVIOUS)), 200)
    assert _ids_in(back_to_second) == listed[2:4]
    assert _ids_in(text_of(admin_client.get(pager_link(back_to_second, NEXT)))) == listed[4:6]
    back_to_first = assert_admin_html(admin_client.get(pager_link(back_to_second, PREVIOUS)), 200)
    assert _ids_in(back_to_first) == listed[0:2]
    assert pager_link(back_to_first, PREVIOUS) is None  # nothing before it: this is the first page
    assert pager_link(back_to_first, NEXT) == pager_link(first, NEXT)


def test_user_pages_follow_the_last_id_not_an_offset_at_the_first_pages_cost(
        app, admin_client, admin, monkeypatch, sql_statements):
    """A page deep in 100,000 users costs what the first page costs (a seek on the id index), and
    users removed from earlier pages move no one past the next page, as an offset would."""
    monkeypatch.setitem(app.config, "ADMIN_PAGE_SIZE", 2)
    ids = _bulk_users(app, 7)
    sql_statements.clear()
    first = text_of(admin_client.get("/admin/users"))
    first_page_cost = len(sql_statements)
    second = text_of(admin_client.get(_next_link(first)))
    assert _ids_in(first) + _ids_in(second) == [admin.id, *ids[:3]]
    with app.app_context():
        db.session.execute(delete(User).where(User.id.in_(ids[:2])))
        db.session.commit()
    sql_statements.clear()
    deep = admin_client.get(_next_link(second))
    assert deep.status_code == 200
    assert _ids_in(text_of(deep)) == ids[3:5]
    assert len(sql_statements) == first_page_cost, sql_statements


@pytest.mark.parametrize("active", [False, True])
def test_the_status_filter_says_not_is_active_as_the_partial_index_does(app, database_url, make_user, active):
    """`NOT is_active` is the partial index's own predicate, so the inactive list reads inactive
    users only. `is_active IS false` means the same, but PostgreSQL cannot prove that it implies
    the index's predicate, and the list read every user."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite reads a table this small whole, whichever index could serve")
    make_user(is_active=False)
    make_user()
    with app.app_context():
        with statements_run(app) as seen:
            page = users.list_users(PageRequest(limit=50), is_active=active)
        connection = db.session.connection()
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a table this small is cheaper read whole
        plan = query_plan(connection, *seen[-1])
    assert [user.is_active for user in page.items] == [active]
    assert ("ix_users_inactive" in plan) is not active, plan


def test_make_admin_then_make_user(app, admin_client, user):
    response = submit(admin_client, f"/admin/users/{user.id}/role", {"role": "admin"}, follow=True)
    assert f"{user.email} is now an admin." in assert_admin_html(response, 200)
    assert _user(app, user.id).role is Role.ADMIN
    response = submit(admin_client, f"/admin/users/{user.id}/role", {"role": "user"}, follow=True)
    assert f"{user.email} is now a user." in text_of(response)
    assert _user(app, user.id).role is Role.USER


def test_deactivate_ends_the_api_sessions_and_activate_does_not_revive_them(app, admin_client, client, user):
    assert client.get("/api/users/me", headers=user.headers).status_code == 200
    response = submit(admin_client, f"/admin/users/{user.id}/active", {"active": "0"}, follow=True)
    assert f"{user.email} is now deactivated." in text_of(response)
    assert not _user(app, user.id).is_active
    assert_problem(client.get("/api/users/me", headers=user.headers), 401)
    submit(admin_client, f"/admin/users/{user.id}/active", {"active": "1"})
    assert _user(app, user.id).is_active
    assert_problem(client.get("/api/users/me", headers=user.headers), 401)
    login = client.post("/api/auth/login", json={"email": user.email, "password": user.password})
    assert login.status_code == 200


def test_actions_redirect_back_to_the_page_they_came_from(admin_client, user):
    response = submit(admin_client, f"/admin/users/{user.id}/active",
                      {"active": "0", "next": "/admin/users?active=1"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/users?active=1"


def test_actions_never_redirect_off_site(admin_client, user):
    response = submit(admin_client, f"/admin/users/{user.id}/active",
                      {"active": "0", "next": "https://evil.example/"})
    assert response.headers["Location"] == f"/admin/users/{user.id}"


@pytest.mark.parametrize(("path", "data", "message"), [
    ("role", {"role": "user"}, "You cannot change the role of your own account."),
    ("active", {"active": "0"}, "You cannot deactivate your own account."),
    ("delete", {}, "You cannot delete your own account."),
])
def test_admin_cannot_demote_deactivate_or_delete_themself(app, admin_client, admin, path, data, message):
    response = submit(admin_client, f"/admin/users/{admin.id}/{path}", data, follow=True)
    assert message in assert_admin_html(response, 200)
    me = _user(app, admin.id)
    assert me is not None and me.is_admin and me.is_active


def test_last_active_admin_rule_comes_from_the_service(app, admin_client, admin, make_user):
    other = make_user(Role.ADMIN)
    submit(admin_client, f"/admin/users/{other.id}/active", {"active": "0"})
    assert not _user(app, other.id).is_active
    # `admin` is now the last active admin; the service refuses to remove them, whoever asks.
    with app.app_context(), pytest.raises(Conflict, match="last active admin"):
        users.set_active(users.get_user(other.id), users.get_user(admin.id), False)


@pytest.mark.parametrize(("path", "data"), [("role", {"role": "root"}), ("role", {}),
                                             ("active", {"active": "yes"}), ("active", {})])
def test_invalid_action_values_change_nothing(app, admin_client, user, path, data):
    response = submit(admin_client, f"/admin/users/{user.id}/{path}", data, follow=True)
    assert "Choose a valid" in assert_admin_html(response, 200)
    after = _user(app, user.id)
    assert after.role is Role.USER and after.is_active


@pytest.mark.parametrize(("path", "data"), [
    ("role", {"role": "admin"}), ("active", {"active": "0"}), ("delete", {}),
])
@pytest.mark.parametrize("token", ["missing", "tampered", "other session"])
def test_changes_without_a_valid_csrf_token_are_refused(app, admin_client, make_user, user, path, data, token):
    if token == "other session":
        other = signed_in(app.test_client(), make_user(Role.ADMIN))
        data = {**data, "csrf_token": page_token(other, "/admin/")}
    elif token == "tampered":
        real = page_token(admin_client, "/admin/")
        data = {**data, "csrf_token": real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")}
    response = admin_client.post(f"/admin/users/{user.id}/{path}", data=data)
    assert "security token" in assert_admin_html(response, 400)
    after = _user(app, user.id)
    assert after is not None and after.role is Role.USER and after.is_active


def test_delete_asks_for_confirmation_first(app, admin_client, user, make_post):
    make_post(user, "One", "x")
    body = assert_admin_html(admin_client.get(f"/admin/users/{user.id}/delete"), 200)
    assert "Delete this user?" in body and user.email in body and "1 post" in body
    assert f'action="/admin/users/{user.id}/delete"' in body
    assert _user(app, user.id) is not None


def test_delete_removes_the_user_and_their_posts(app, admin_client, user, make_post):
    make_post(user, "One", "x")
    response = submit(admin_client, f"/admin/users/{user.id}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/users"
    assert f"User {user.email} and their posts were deleted." in text_of(admin_client.get("/admin/users"))
    assert _user(app, user.id) is None
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Post)) == 0


def test_deleting_by_get_changes_nothing(app, admin_client, user):
    admin_client.get(f"/admin/users/{user.id}/delete")
    assert _user(app, user.id) is not None


def test_user_detail_shows_details_and_recent_posts(app, admin_client, user, make_post):
    for i in range(12):
        make_post(user, f"Post number {i}", "x")
    body = assert_admin_html(admin_client.get(f"/admin/users/{user.id}"), 200)
    assert user.email in body
    assert "Post number 11" in body and "Post number 2" in body and "Post number 1<" not in body
    assert "All 12 posts by this user" in body
    assert f'href="/admin/posts?author={user.id}"' in body


@pytest.mark.parametrize("path", ["/admin/users/999999", "/admin/users/99999999999999",
                                  "/admin/users/999999/delete", "/admin/users/abc"])
def test_unknown_user_is_a_404_page(admin_client, path):
    assert_admin_html(admin_client.get(path), 404)


def test_action_on_unknown_user_is_a_404_page(admin_client):
    assert_admin_html(submit(admin_client, "/admin/users/999999/active", {"active": "0"}), 404)


def test_signed_out_admin_cannot_act(app, client, admin, user):
    signed_in(client, admin)
    token = page_token(client, "/admin/")
    submit(client, "/admin/logout")
    response = client.post(f"/admin/users/{user.id}/active", data={"active": "0", "csrf_token": token})
    assert response.status_code == 400  # the CSRF token died with the session
    assert _user(app, user.id).is_active


def test_the_admins_own_row_and_page_offer_no_change_the_rules_refuse(admin_client, admin, make_user):
    """Demoting, deactivating or deleting yourself always fails: no buttons for it, on the list or the page."""
    other = make_user(name="Someone Else")
    body = assert_admin_html(admin_client.get("/admin/users"), 200)
    rows = dict(re.findall(r'<tr data-user-id="(\d+)">(.*?)</tr>', body, re.S))
    own, theirs = rows[str(admin.id)], rows[str(other.id)]
    for refused in (f"/admin/users/{admin.id}/role", f"/admin/users/{admin.id}/active",
                    f"/admin/users/{admin.id}/delete"):
        assert refused not in own
    assert "None on your own account" in own
    assert f"/admin/users/{other.id}/role" in theirs and f"/admin/users/{other.id}/delete" in theirs
    page = assert_admin_html(admin_client.get(f"/admin/users/{admin.id}"), 200)
    assert "Make user" not in page and "Deactivate" not in page and f"/users/{admin.id}/delete" not in page
    assert "End all sessions" in page  # that one works on yourself
    confirm = assert_admin_html(admin_client.get(f"/admin/users/{admin.id}/delete"), 200)
    assert "You cannot delete your own account" in confirm and "Delete user</button>" not in confirm


def test_a_later_page_of_users_links_back_to_the_first_keeping_the_filters(app, admin_client, monkeypatch):
    monkeypatch.setitem(app.config, "ADMIN_PAGE_SIZE", 2)
    _bulk_users(app, 3)
    first_page = assert_admin_html(admin_client.get("/admin/users?q=bulk"), 200)
    assert "First page" not in first_page
    second = assert_admin_html(admin_client.get(_next_link(first_page)), 200)
    first = re.search(r'<a href="([^"]+)">« First page</a>', second)
    assert first and first.group(1) == "/admin/users?q=bulk"
