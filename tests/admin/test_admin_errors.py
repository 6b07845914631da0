"""Errors under /admin are HTML pages in the admin's look; every admin page carries strict headers."""

from __future__ import annotations

import re

import pytest
from flask import abort
from sqlalchemy import text

from app.errors import PermissionDenied
from app.extensions import db
from tests.admin_support import (
    ADMIN_STYLESHEET,
    assert_admin_html,
    page_token,
    signed_in,
    text_of,
)
from tests.helpers import assert_problem


@pytest.fixture
def admin_client(client, admin):
    return signed_in(client, admin)


@pytest.fixture
def boom_app(make_app):
    """Another app on the same database, with routes under /admin that fail on purpose."""
    app = make_app()

    @app.get("/admin/test-boom")
    def boom():
        raise RuntimeError("secret-detail password=hunter2 in /srv/app/secret.py")

    @app.get("/admin/test-forbidden")
    def forbidden():
        raise PermissionDenied("Admins only, and you are not one.")

    @app.get("/admin/test-abort-403")
    def abort_403():
        abort(403)

    @app.get("/admin/test-broken-sql")
    def broken_sql():
        db.session.execute(
            text("INSERT INTO posts (author_id, title, body, created_at, updated_at) "
                 "VALUES (987654, 'leak', 'x', :t, :t)"),
            {"t": "2024-01-01 00:00:00"},
        )
        db.session.commit()
        return "unreachable"

    return app


def test_unknown_admin_page_is_a_404_html_page(admin_client):
    body = assert_admin_html(admin_client.get("/admin/no-such-page"), 404)
    assert "Not Found" in body and "<h1>" in body


def test_anonymous_404_shows_nothing_of_the_admin(client, user):
    body = assert_admin_html(client.get("/admin/no-such-page"), 404)
    assert "Log out" not in body and user.email not in body and "Users</a>" not in body


def test_wrong_method_is_a_405_html_page(admin_client):
    response = admin_client.put("/admin/users")
    assert_admin_html(response, 405)
    assert "GET" in response.headers["Allow"]


def test_unexpected_error_is_a_500_html_page_without_details(boom_app):
    response = boom_app.test_client().get("/admin/test-boom")
    body = assert_admin_html(response, 500)
    assert "Internal Server Error" in body
    for leak in ("secret-detail", "hunter2", "RuntimeError", "Traceback", "secret.py"):
        assert leak not in body


def test_database_error_is_a_500_html_page_without_sql(boom_app):
    body = assert_admin_html(boom_app.test_client().get("/admin/test-broken-sql"), 500)
    for leak in ("INSERT", "987654", "FOREIGN", "foreign", "sqlite", "psycopg2", "IntegrityError"):
        assert leak not in body


@pytest.mark.parametrize(("path", "detail"), [("/admin/test-forbidden", "Admins only, and you are not one."),
                                              ("/admin/test-abort-403", "Forbidden")])
def test_forbidden_is_a_403_html_page(boom_app, path, detail):
    body = assert_admin_html(boom_app.test_client().get(path), 403)
    assert detail in body


def test_csrf_failure_is_a_400_html_page_that_says_why(admin_client, user):
    body = assert_admin_html(admin_client.post(f"/admin/users/{user.id}/active", data={"active": "0"}), 400)
    assert "security token" in body and "nothing was changed" in body


def test_api_errors_stay_problem_json(client):
    assert_problem(client.get("/api/no-such-thing"), 404)
    assert_problem(client.get("/api/users/me"), 401)


def test_error_pages_escape_their_detail(boom_app, app):
    @boom_app.get("/admin/test-echo")
    def echo():
        raise PermissionDenied("<img src=x onerror=alert(1)>")

    body = assert_admin_html(boom_app.test_client().get("/admin/test-echo"), 403)
    assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


# ---- headers and the no-inline-script rule -------------------------------------


def _all_admin_pages(make_post, admin) -> list[str]:
    post_id = make_post(admin, "A title", "A body")
    return [
        "/admin/", "/admin/users", f"/admin/users/{admin.id}", f"/admin/users/{admin.id}/delete",
        "/admin/posts", f"/admin/posts/{post_id}", f"/admin/posts/{post_id}/delete",
        "/admin/users?role=nope", "/admin/no-such-page",
    ]


def _assert_admin_headers(response) -> None:
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp  # so no script at all
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"


def test_every_admin_page_has_strict_security_headers_and_no_inline_script(make_post, admin_client, admin):
    for path in _all_admin_pages(make_post, admin):
        response = admin_client.get(path)
        _assert_admin_headers(response)
        assert response.headers["Cache-Control"] == "no-store"
        body = text_of(response).lower()
        assert "<script" not in body, path
        assert not re.search(r"\son[a-z]+\s*=", body), path  # no inline event handlers
        assert " style=" not in body, path  # styles come only from the stylesheet


def test_login_and_error_pages_have_the_headers_too(client):
    _assert_admin_headers(client.get("/admin/login"))
    _assert_admin_headers(client.get("/admin/no-such-page"))
    token = page_token(client, "/admin/login")
    _assert_admin_headers(client.post("/admin/login", data={"email": "x@example.com", "password": "p",
                                                            "csrf_token": token + "x"}))


def test_stylesheet_is_local_and_served(client):
    response = client.get(ADMIN_STYLESHEET)
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    css = text_of(response)
    assert "@import" not in css and "url(" not in css  # nothing fetched from the network
    assert "@media (max-width" in css  # a phone layout


def test_api_headers_are_not_the_admin_ones(client):
    response = client.get("/api/posts")
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_a_path_that_only_starts_like_admin_is_the_apis_404(client):
    """`/administrator` is not under the admin blueprint: problem JSON and the API's headers."""
    response = client.get("/administrator")
    assert_problem(response, 404)
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "style-src" not in response.headers["Content-Security-Policy"]


def test_an_unknown_admin_path_gets_the_admin_page_and_the_admin_headers(client):
    response = client.get("/admin/no-such-page/deeper")
    assert response.status_code == 404 and response.mimetype == "text/html"
    _assert_admin_headers(response)
