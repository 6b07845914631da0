"""Errors are RFC 9457 problem details: unknown routes, wrong methods, big bodies, crashes."""

import json

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.helpers import assert_problem


@pytest.mark.parametrize("path", ["/api/nope", "/api", "/api/users/1/unknown", "/api/posts/1/comments", "/health/x"])
def test_unknown_route_is_404_problem_json(client, user, path):
    body = assert_problem(client.get(path, headers=user.headers), 404)
    assert body["title"] == "Not Found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/posts/1", {"GET", "PATCH", "DELETE"}),
        ("DELETE", "/api/posts", {"GET", "POST"}),
        ("PUT", "/api/users", {"GET", "POST"}),
        ("POST", "/api/users/me", {"GET"}),
        ("GET", "/api/auth/login", {"POST"}),
        ("DELETE", "/health/ready", {"GET"}),
    ],
)
def test_wrong_method_is_405_with_allow(client, method, path, allowed):
    response = client.open(path, method=method)
    assert_problem(response, 405)
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_body_over_the_default_limit_is_413(app, client, user):
    too_big = app.config["MAX_CONTENT_LENGTH"] + 1
    response = client.post(
        "/api/posts",
        data=json.dumps({"title": "Big", "body": "x" * too_big}),
        content_type="application/json",
        headers=user.headers,
    )
    assert_problem(response, 413)
    assert client.get("/api/posts").get_json() == []


def test_body_over_a_configured_limit_is_413(app, client):
    original = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 200
    try:
        response = client.post(
            "/api/users", json={"email": "big@example.com", "name": "n" * 300, "password": "Sup3rSecret"}
        )
        assert_problem(response, 413)
        small = client.post("/api/users", json={"email": "ok@example.com", "name": "Ok", "password": "Sup3rSecret"})
        assert small.status_code == 201
    finally:
        app.config["MAX_CONTENT_LENGTH"] = original


def test_unexpected_error_is_500_without_traceback_or_exception_text(make_app):
    app = make_app()

    @app.get("/api/boom")
    def boom():
        raise RuntimeError("secret-detail password=hunter2 in /srv/app/secret.py")

    response = app.test_client().get("/api/boom")
    body = assert_problem(response, 500)
    text_ = response.get_data(as_text=True)
    for leak in ("secret-detail", "hunter2", "RuntimeError", "Traceback", "secret.py"):
        assert leak not in text_
    assert body["title"] == "Internal Server Error"


def test_database_error_is_500_without_sql(make_app):
    app = make_app()

    @app.get("/api/broken-insert")
    def broken_insert():
        db.session.execute(
            text("INSERT INTO posts (author_id, title, body, created_at, updated_at) VALUES (:a, 'leak', 'x', :t, :t)"),
            {"a": 987_654, "t": "2024-01-01 00:00:00"},
        )
        db.session.commit()
        return "unreachable"

    response = app.test_client().get("/api/broken-insert")
    assert_problem(response, 500)
    text_ = response.get_data(as_text=True)
    for leak in ("INSERT", "posts", "987654", "FOREIGN", "foreign", "sqlite", "psycopg2", "IntegrityError"):
        assert leak not in text_
    with app.app_context():  # the failed transaction left nothing behind
        assert db.session.scalar(text("SELECT count(*) FROM posts")) == 0


def test_404_for_api_is_not_html(client):
    response = client.get("/api/nope", headers={"Accept": "text/html"})
    assert_problem(response, 404)
    assert "<html" not in response.get_data(as_text=True).lower()


def test_problem_details_have_exactly_the_rfc_9457_members(client, user):
    body = assert_problem(client.get("/api/posts/999999"), 404)
    assert set(body) == {"type", "title", "status", "detail"}
    body = assert_problem(client.post("/api/posts", json={}, headers=user.headers), 422)
    assert set(body) == {"type", "title", "status", "detail", "errors"}
    assert all(isinstance(messages, list) for messages in body["errors"].values())


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/posts/{big}"),
        ("PATCH", "/api/posts/{big}"),
        ("DELETE", "/api/posts/{big}"),
        ("GET", "/api/users/{big}"),
        ("PATCH", "/api/users/{big}"),
        ("DELETE", "/api/users/{big}"),
        ("GET", "/api/users/{big}/posts"),
    ],
)
@pytest.mark.parametrize("big", [2**31, 2**63, 10**20])
def test_ids_beyond_any_row_are_404_not_500(client, admin, method, path, big):
    response = client.open(
        path.format(big=big), method=method, json={} if method == "PATCH" else None, headers=admin.headers
    )
    assert_problem(response, 404)


def test_every_input_rule_names_the_request_field_it_reports_on():
    """Services raise rules, not fields; `FIELD_OF` in app/errors.py is where a rule meets its field."""
    from app.errors import FIELD_OF, InvalidInput

    rules = InvalidInput.__subclasses__()
    assert rules and set(rules) == set(FIELD_OF)


def test_a_broken_input_rule_is_422_naming_its_field(client, user):
    response = client.put(f"/api/users/{user.id}/follow", headers=user.headers)
    body = assert_problem(response, 422)
    assert body["errors"] == {"user_id": ["You cannot follow yourself."]}
    assert body["detail"] == "You cannot follow yourself."


# ---- what the URL should have been (404 and 405 of the routing) -------------------------


@pytest.mark.parametrize(("path", "location"), [
    ("/api/users/", "/api/users"),
    ("/api/users/me/", "/api/users/me"),
    ("/api/posts/?limit=2&q=caf%C3%A9", "/api/posts?limit=2&q=caf%C3%A9"),
    ("/api/users/7//", "/api/users/7"),
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_with_a_trailing_slash_is_redirected_308_to_the_url_without_it(client, user, method, path,
                                                                               location):
    response = client.open(path, method=method, headers=user.headers)
    assert response.status_code == 308
    assert response.headers["Location"] == location


def test_following_the_trailing_slash_redirect_reaches_the_resource(client, user):
    response = client.get("/api/users/me/", headers=user.headers, follow_redirects=True)
    assert response.status_code == 200
    assert response.get_json()["id"] == user.id


@pytest.mark.parametrize(("method", "path", "url"), [
    ("POST", "/api/users/", "/api/users"),
    ("PATCH", "/api/posts/3/", "/api/posts/3"),
    ("PUT", "/api/users/3/follow/", "/api/users/3/follow"),
])
def test_a_write_with_a_trailing_slash_is_404_naming_the_url_without_it(client, user, method, path, url):
    body = assert_problem(client.open(path, method=method, json={}, headers=user.headers), 404)
    assert f"use {url}, without the trailing slash" in body["detail"]


def test_a_trailing_slash_on_a_url_that_refuses_the_method_names_the_url_and_its_methods(client, user):
    body = assert_problem(client.delete("/api/users/me/", headers=user.headers), 404)
    assert "/api/users/me, without the trailing slash" in body["detail"]
    assert "GET, HEAD" in body["detail"]


def test_an_unknown_url_without_a_near_miss_points_at_the_index_and_the_docs(client):
    for path in ("/api/nope/", "/api/nope"):
        body = assert_problem(client.get(path), 404)
        assert "/docs" in body["detail"]


def test_a_wrong_method_names_the_methods_allowed_in_the_detail_and_the_allow_header(client):
    response = client.put("/api/posts/1")
    body = assert_problem(response, 405)
    assert "PUT is not allowed on this URL: it allows DELETE, GET, HEAD, OPTIONS, PATCH." in body["detail"]
    assert "PATCH" in body["detail"].split("PATCH.", 1)[1]  # and says to use it
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH"}


def test_patch_of_me_says_to_patch_the_users_own_id(client, user):
    response = client.patch("/api/users/me", json={"name": "New"}, headers=user.headers)
    body = assert_problem(response, 405)
    assert "it allows GET, HEAD, OPTIONS" in body["detail"]
    assert "PATCH /api/users/<id>" in body["detail"] and "GET /api/users/me" in body["detail"]
    assert "GET" in response.headers["Allow"]


def test_a_made_up_method_is_not_echoed_in_the_405(client):
    body = assert_problem(client.open("/api/posts", method="XA1B2C3"), 405)
    assert "XA1B2C3" not in body["detail"]
    assert "it allows GET, HEAD, OPTIONS, POST" in body["detail"]


def test_a_body_over_the_limit_names_the_limit(app, client, user):
    response = client.post("/api/posts", data=json.dumps({"title": "Big", "body": "x" * (1 << 20)}),
                           content_type="application/json", headers=user.headers)
    assert app.config["MAX_CONTENT_LENGTH"] == 1 << 20
    assert "limit of 1 MiB" in assert_problem(response, 413)["detail"]


def test_a_configured_limit_is_named_in_its_own_unit(app, client):
    original = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 200
    try:
        response = client.post("/api/users", json={"email": "big@example.com", "name": "n" * 300,
                                                   "password": "Sup3rSecret"})
        assert "limit of 200 bytes" in assert_problem(response, 413)["detail"]
    finally:
        app.config["MAX_CONTENT_LENGTH"] = original
