"""The admin pages in headless Chromium, against the real app under gunicorn and the test database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Post, Role, User
from app.services import users
from tests.e2e.conftest import sign_in

XSS = "<script>alert(1)</script>"


def _database_counts(app) -> dict[str, int]:
    """Counted here with plain SQL, independently of the dashboard's own service: "new" is
    created on one of the last seven UTC days, today included."""
    today = datetime.now(UTC).date()
    week_ago = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=6)

    def count(model, *where) -> int:
        return db.session.scalar(select(func.count()).select_from(model).where(*where))

    with app.app_context():
        return {
            "users": count(User),
            "admins": count(User, User.role == Role.ADMIN),
            "inactive": count(User, User.is_active.is_(False)),
            "posts": count(Post),
            "new-users": count(User, User.created_at >= week_ago),
            "new-posts": count(Post, Post.created_at >= week_ago),
        }


def _no_csp_violations(page) -> None:
    assert not [m for m in page.console_problems if "Content Security Policy" in m], page.console_problems


def test_admin_signs_in_and_the_dashboard_matches_the_database(app, page, make_user, admin, artifacts, make_post):
    writers = [make_user(name=f"Writer {i}") for i in range(4)]
    make_user(Role.ADMIN, name="Second Admin")
    make_user(name="Dormant", is_active=False)
    with app.app_context():
        db.session.execute(update(User).where(User.id == writers[0].id)
                           .values(created_at=datetime.now(UTC) - timedelta(days=40)))
        db.session.commit()
    for i, days in enumerate([0, 0, 0, 1, 2, 2, 3, 5, 8, 9, 12, 15, 15, 15, 20, 24, 27, 29, 35]):
        at = datetime.now(UTC) - timedelta(days=days, minutes=5)
        make_post(writers[i % 4], f"Post {i}", f"Body of Post {i}", at=at)

    sign_in(page, admin)
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator(".flash-success")).to_have_text(f"Signed in as {admin.email}.")
    expected = _database_counts(app)
    for key, value in expected.items():
        expect(page.locator(f"#stat-{key} .stat-value")).to_have_text(str(value))
    assert expected["users"] == 7 and expected["posts"] == 19  # the data above, not an empty page

    chart = page.locator("svg.bar-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar")).to_have_count(30)
    drawn = sum(int(n) for n in chart.locator("rect.bar").evaluate_all("bars => bars.map(b => b.dataset.count)"))
    assert drawn == 18  # everything but the 35-day-old post
    expect(chart.locator("text.axis-title")).to_have_text(["Day (UTC)", "Posts"])
    expect(page.locator(".topbar")).to_have_css("background-color", "rgb(29, 35, 48)")  # stylesheet applied
    _no_csp_violations(page)
    page.screenshot(path=str(artifacts / "admin-dashboard.png"), full_page=True)


def test_search_a_user_deactivate_them_and_their_api_token_is_refused(page, live_server, make_user, admin,
                                                                       artifacts):
    for i in range(6):
        make_user(name=f"Someone {i}")
    target = make_user(name="Quentin Target", email="quentin@example.org")
    me = requests.get(f"{live_server.url}/api/users/me", headers=target.headers, timeout=10)
    assert me.status_code == 200

    sign_in(page, admin)
    page.get_by_role("link", name="Users", exact=True).click()
    expect(page.locator("#users-table tbody tr")).to_have_count(8)
    page.screenshot(path=str(artifacts / "admin-users.png"), full_page=True)

    page.get_by_label("Search").fill("quentin")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#users-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("quentin@example.org")

    rows.first.get_by_role("button", name="Deactivate").click()
    expect(page.locator(".flash-success")).to_have_text("quentin@example.org is now deactivated.")
    expect(page).to_have_url(re.compile(r"/admin/users\?q=quentin&"))  # back on the filtered list
    expect(rows.first.get_by_role("button", name="Activate")).to_be_visible()
    expect(rows.first.locator(".badge-inactive")).to_have_text("inactive")

    refused = requests.get(f"{live_server.url}/api/users/me", headers=target.headers, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    _no_csp_violations(page)


def test_delete_a_post_and_it_is_gone_from_the_api(app, page, live_server, user, admin, make_post):
    keep = make_post(user, "Keep me", "Body of Keep me", at=datetime.now(UTC) - timedelta(minutes=2))
    doomed = make_post(user, "Delete me", "Body of Delete me")
    listed = [p["id"] for p in requests.get(f"{live_server.url}/api/posts", timeout=10).json()]
    assert doomed in listed and keep in listed

    sign_in(page, admin)
    page.get_by_role("link", name="Posts", exact=True).click()
    row = page.locator(f'tr[data-post-id="{doomed}"]')
    row.get_by_role("link", name="Delete", exact=True).click()
    expect(page.get_by_role("heading", name="Delete this post?")).to_be_visible()
    assert doomed in [p["id"] for p in requests.get(f"{live_server.url}/api/posts", timeout=10).json()]

    page.get_by_role("button", name="Delete post").click()
    expect(page.locator(".flash-success")).to_have_text(f"Post #{doomed} was deleted.")
    expect(page.locator(f'tr[data-post-id="{doomed}"]')).to_have_count(0)
    listed = [p["id"] for p in requests.get(f"{live_server.url}/api/posts", timeout=10).json()]
    assert listed == [keep]
    assert requests.get(f"{live_server.url}/api/posts/{doomed}", timeout=10).status_code == 404


def test_an_xss_title_is_rendered_as_text(app, page, user, admin, make_post):
    post_id = make_post(user, XSS, f"Body of {XSS}")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    sign_in(page, admin)
    page.goto("/admin/posts")
    expect(page.locator(f'tr[data-post-id="{post_id}"] td.title')).to_have_text(XSS)
    page.goto(f"/admin/posts/{post_id}")
    expect(page.locator("h1.post-title")).to_have_text(XSS)
    page.goto(f"/admin/users/{user.id}")
    expect(page.locator(".post-list")).to_contain_text(XSS)
    assert page.locator("main script").count() == 0
    assert dialogs == []


def test_a_non_admin_is_refused(page, user):
    sign_in(page, user)
    expect(page).to_have_url(re.compile(r"/admin/login$"))
    expect(page.locator(".flash-error")).to_have_text("Invalid credentials.")

    page.goto("/admin/users")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/users$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    page.context.set_extra_http_headers({"Authorization": f"Bearer {user.access_token}"})
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login"))


def test_an_admin_bearer_token_does_not_open_the_admin(page, admin):
    page.context.set_extra_http_headers({"Authorization": f"Bearer {admin.access_token}"})
    page.goto("/admin/users")
    expect(page).to_have_url(re.compile(r"/admin/login"))
    expect(page.locator("#users-table")).to_have_count(0)


def test_a_tampered_csrf_token_is_refused_and_changes_nothing(app, page, user, admin):
    sign_in(page, admin)
    page.goto("/admin/users")
    row = page.locator(f'tr[data-user-id="{user.id}"]')
    form = row.locator("form").filter(has=page.get_by_role("button", name="Deactivate"))
    form.locator('input[name="csrf_token"]').evaluate("input => { input.value = input.value.slice(0, -3) + 'xyz' }")
    form.get_by_role("button", name="Deactivate").click()

    expect(page.locator("h1")).to_have_text("Bad Request")
    expect(page.locator("main")).to_contain_text("security token")
    assert page.locator("link[href='/admin/static/admin.css']").count() == 1  # the admin's own look
    with app.app_context():
        assert users.get_user(user.id).is_active


def test_logout_ends_the_session(page, admin):
    sign_in(page, admin)
    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".flash-success")).to_have_text("You have been signed out.")
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login"))


def test_the_admins_own_page_offers_no_change_the_rules_refuse(app, page, admin):
    """Demoting, deactivating or deleting yourself always fails (tests/admin/test_admin_users.py
    posts each anyway): the page offers none of them, only ending your sessions."""
    sign_in(page, admin)
    page.goto(f"/admin/users/{admin.id}")
    for name in ("Make user", "Deactivate"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_role("link", name="Delete", exact=True)).to_have_count(0)
    expect(page.locator(".own-account")).to_have_text("None on your own account")
    expect(page.get_by_role("button", name="End all sessions")).to_be_visible()
    with app.app_context():
        assert users.get_user(admin.id).is_admin


def test_delete_user_asks_for_confirmation(app, page, user, admin):
    sign_in(page, admin)
    page.goto(f"/admin/users/{user.id}")
    page.get_by_role("link", name="Delete", exact=True).click()
    expect(page.get_by_role("heading", name="Delete this user?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(re.compile(rf"/admin/users/{user.id}$"))
    page.get_by_role("link", name="Delete", exact=True).click()
    page.get_by_role("button", name="Delete user").click()
    expect(page.locator(".flash-success")).to_have_text(f"User {user.email} and their posts were deleted.")
    with app.app_context():
        assert db.session.get(User, user.id) is None


@pytest.mark.parametrize("path", ["/admin/", "/admin/users", "/admin/posts"])
def test_pages_fit_a_phone_screen(app, page, make_user, admin, artifacts, path, make_post):
    wordy = make_user(name="A person with a rather long name to wrap", email="someone.with.a.long.address@example.com")
    for days in (0, 1, 1, 4, 9, 9, 9, 20):
        title = f"A fairly long title for a post written {days} days ago"
        make_post(wordy, title, f"Body of {title}", at=datetime.now(UTC) - timedelta(days=days))
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, admin)
    page.goto(path)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"
    name = path.strip("/").replace("/", "-")
    page.screenshot(path=str(artifacts / f"{name}-phone.png"), full_page=True)


def test_end_all_sessions_from_the_user_page_signs_the_user_out_everywhere(page, live_server, make_user, admin,
                                                                         artifacts):
    target = make_user(name="Roaming User")
    assert requests.get(f"{live_server.url}/api/users/me", headers=target.headers, timeout=10).status_code == 200

    sign_in(page, admin)
    page.goto(f"{live_server.url}/admin/users/{target.id}")
    expect(page.locator("dd.sessions")).to_have_text("1 active")
    expect(page.locator(".badge-unverified")).to_have_text("unverified")
    page.screenshot(path=str(artifacts / "admin-user.png"), full_page=True)
    page.get_by_role("button", name="End all sessions").click()
    expect(page.locator(".flash-success")).to_have_text(f"All sessions of {target.email} were ended.")
    expect(page.locator("dd.sessions")).to_have_text("0 active")

    refused = requests.get(f"{live_server.url}/api/users/me", headers=target.headers, timeout=10)
    assert refused.status_code == 401
    _no_csp_violations(page)
