"""Bad input never reaches the database as a 500; CORS and security headers hold."""

from __future__ import annotations

import io
import json
import re

import pytest
import requests

from config import ConfigurationError
from tests.helpers import PASSWORD, assert_problem, production_settings

ORIGIN = "https://app.example.com"
JSON_ROUTES = [
    ("POST", "/api/users"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/posts"),
    ("PATCH", "/api/posts/{post}"),
    ("PATCH", "/api/users/{user}"),
]


@pytest.fixture
def post_id(make_post, user) -> int:
    return make_post(user, "Hello", "World")


def call(client, method: str, path: str, user, post_id: int, **kwargs):
    url = path.format(post=post_id, user=user.id)
    return client.open(url, method=method, headers=user.headers, **kwargs)


# ---- request bodies -----------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_body_over_the_size_limit_is_413_problem_json(make_app, user, post_id, method, path):
    client = make_app(MAX_CONTENT_LENGTH=2048).test_client()
    body = json.dumps({"title": "x" * 4096})
    response = call(client, method, path, user, post_id, data=body, content_type="application/json")
    assert_problem(response, 413)


def test_default_body_limit_is_one_mebibyte(client, user):
    just_over = json.dumps({"title": "t", "body": "x" * (1024 * 1024)})
    assert_problem(client.post("/api/posts", data=just_over, content_type="application/json",
                               headers=user.headers), 413)


def test_body_limit_applies_without_a_content_length(make_app, user):
    """A chunked upload has no Content-Length; it must still stop at the limit."""
    client = make_app(MAX_CONTENT_LENGTH=2048).test_client()
    raw = b'{"title": "t", "body": "' + b"x" * 10_000 + b'"}'
    response = client.post("/api/posts", input_stream=io.BytesIO(raw),
                           environ_overrides={"wsgi.input_terminated": True},
                           headers={**user.headers, "Content-Type": "application/json",
                                    "Transfer-Encoding": "chunked"})
    assert_problem(response, 413)


def test_chunked_upload_over_the_limit_is_413_under_gunicorn(live_server, user):
    def chunks():
        yield b'{"title": "t", "body": "'
        for _ in range(1100):
            yield b"x" * 1024
        yield b'"}'

    response = requests.post(live_server.url + "/api/posts", data=chunks(), timeout=10,
                             headers={**user.headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_non_json_body_is_415_problem_json(client, user, post_id, method, path, content_type):
    response = call(client, method, path, user, post_id, data="title=x", content_type=content_type)
    assert_problem(response, 415)


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
@pytest.mark.parametrize("raw", [b"{", b'{"title": }', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000])
def test_malformed_json_is_400_problem_json(client, user, post_id, method, path, raw):
    response = call(client, method, path, user, post_id, data=raw, content_type="application/json")
    assert_problem(response, 400)


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b", "a\x07b", "a\x1bb", "a\x7fb", "a\x85b"])
@pytest.mark.parametrize("field", ["title", "body"])
def test_nul_controls_and_lone_surrogates_in_posts_are_422(client, user, bad, field):
    fields = {"title": "ok", "body": "ok", field: bad}
    response = client.post("/api/posts", json=fields, headers=user.headers)
    body = assert_problem(response, 422)
    assert field in body["errors"]


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b", "a\x01b"])
def test_nul_controls_and_lone_surrogates_in_a_post_update_are_422(client, user, post_id, bad):
    response = client.patch(f"/api/posts/{post_id}", json={"body": bad}, headers=user.headers)
    assert "body" in assert_problem(response, 422)["errors"]


def test_tab_newline_and_carriage_return_stay_allowed_in_post_bodies(client, user):
    text = "line one\r\n\tline two\n"
    response = client.post("/api/posts", json={"title": "Whitespace", "body": text}, headers=user.headers)
    assert response.status_code == 201
    assert client.get(response.headers["Location"]).get_json()["body"] == text


@pytest.mark.parametrize("bad", ["tab\there", "new\nline"])
def test_titles_refuse_even_whitespace_controls(client, user, bad):
    response = client.post("/api/posts", json={"title": bad, "body": "b"}, headers=user.headers)
    assert "title" in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize("bad", ["Ann\x00", "Ann\ud800", "Ann\nBob"])
def test_bad_characters_in_user_names_are_422(client, user, bad):
    response = client.patch(f"/api/users/{user.id}", json={"name": bad}, headers=user.headers)
    assert "name" in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize("bad", ["a\x00@example.com", "a\ud800@example.com"])
def test_bad_characters_in_a_login_email_never_reach_the_database(client, bad):
    response = client.post("/api/auth/login", json={"email": bad, "password": PASSWORD})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("query", ["q=a%00b", "q=a%01b", "cursor=%00", "author_id=1%00"])
def test_bad_characters_in_query_strings_are_422(client, query):
    assert_problem(client.get(f"/api/posts?{query}"), 422)


def test_raw_escaped_nul_in_json_is_422_not_a_database_error(client, user):
    raw = b'{"title": "x\\u0000y", "body": "b"}'
    response = client.post("/api/posts", data=raw, content_type="application/json", headers=user.headers)
    assert "title" in assert_problem(response, 422)["errors"]


# ---- CORS ----------------------------------------------------------------------


@pytest.fixture
def cors_client(make_app):
    return make_app(CORS_ORIGINS=[ORIGIN, "https://admin.example.com"]).test_client()


def test_a_listed_origin_gets_cors_headers_and_the_exposed_headers(cors_client):
    response = cors_client.get("/api/posts", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"etag", "link", "location", "retry-after", "x-request-id", "x-ratelimit-limit",
            "x-ratelimit-remaining", "x-ratelimit-reset"} <= exposed
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("origin", ["https://evil.example.com", "null", "https://app.example.com.evil.io",
                                    "http://app.example.com"])
def test_a_foreign_or_null_origin_gets_no_cors_headers(cors_client, origin):
    response = cors_client.get("/api/posts", headers={"Origin": origin})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Expose-Headers" not in response.headers


@pytest.mark.parametrize("entry", ["https://*.example.org", "*", "https://app.example.(com|io)",
                                   "app.example.com", "https://app.example.com/path", "https://a@app.example.com"])
def test_a_cors_entry_that_is_no_exact_origin_is_refused_at_startup(make_app, entry):
    """flask-cors would take `https://*.example.org` as an unanchored regex: it allows https://example.org.evil.io."""
    with pytest.raises(ConfigurationError, match="CORS_ORIGINS entries are exact origins"):
        make_app(CORS_ORIGINS=[ORIGIN, entry])


def test_cors_entries_match_exactly_even_with_brackets(make_app):
    client = make_app(CORS_ORIGINS="http://[::1]:8080, HTTPS://App.Example.com/").test_client()
    for allowed in ("http://[::1]:8080", ORIGIN):
        assert client.get("/api/posts", headers={"Origin": allowed}).headers["Access-Control-Allow-Origin"] == allowed
    for other in ("http://1:8080", "http://[::1]:8080.evil.io", "http://[::1]:80800", ORIGIN + ".evil.io"):
        assert "Access-Control-Allow-Origin" not in client.get("/api/posts", headers={"Origin": other}).headers


def test_without_configured_origins_nobody_gets_cors_headers(client):
    response = client.get("/api/posts", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options("/api/posts", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization"})
    assert preflight.status_code == 200 and "POST" in preflight.headers["Allow"]
    assert not [name for name, _ in preflight.headers if name.lower().startswith("access-control-")]


def test_preflight_from_a_listed_origin_allows_bearer_writes(cors_client):
    response = cors_client.options("/api/posts", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


def test_preflight_from_a_foreign_origin_is_not_allowed(cors_client):
    response = cors_client.options("/api/posts", headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_errors_carry_cors_headers_so_browsers_can_read_them(cors_client):
    response = cors_client.post("/api/posts", json={}, headers={"Origin": ORIGIN})
    assert_problem(response, 401)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_a_429_exposes_retry_after_and_limits_to_a_listed_origin(make_app, user):
    client = make_app(CORS_ORIGINS=[ORIGIN], RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://",
                      RATELIMIT_LOGIN="1/minute").test_client()
    client.post("/api/auth/login", json={"email": user.email, "password": "x"}, headers={"Origin": ORIGIN})
    response = client.post("/api/auth/login", json={"email": user.email, "password": user.password},
                           headers={"Origin": ORIGIN})
    assert_problem(response, 429)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = response.headers["Access-Control-Expose-Headers"].lower()
    assert "retry-after" in exposed and "x-ratelimit-remaining" in exposed
    assert int(response.headers["Retry-After"]) > 0


# ---- security headers ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/posts", "/health", "/api/nope", "/api/users/me"])
def test_api_responses_say_nosniff_and_deny_framing(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_a_security_header_the_view_set_itself_is_kept_and_not_repeated(make_app):
    app = make_app()

    @app.get("/api/test-own-headers")
    def own_headers():
        return {}, 200, {"referrer-policy": "same-origin", "X-Frame-Options": "SAMEORIGIN"}

    headers = app.test_client().get("/api/test-own-headers").headers
    assert headers.getlist("Referrer-Policy") == ["same-origin"]
    assert headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert headers.getlist("X-Content-Type-Options") == ["nosniff"]


def test_authenticated_responses_are_not_cached(client, user):
    response = client.get("/api/users/me", headers=user.headers)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_authenticated_errors_are_not_cached_either(client, user):
    response = client.get("/api/users/999999", headers=user.headers)
    assert_problem(response, 404)
    assert response.headers["Cache-Control"] == "no-store"


def test_token_responses_are_not_cached(client, user):
    response = client.post("/api/auth/login", json={"email": user.email, "password": user.password})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_no_hsts_outside_production(client):
    assert "Strict-Transport-Security" not in client.get("/health").headers


def test_production_sends_hsts(make_app):
    client = make_app(**production_settings(RATELIMIT_STORAGE_URI="memory://")).test_client()
    response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


# ---- what fuzzing the contract found ----------------------------------------------------


def test_logout_body_is_optional(client, user):
    assert client.post("/api/auth/logout", headers=user.headers).status_code == 204


def test_a_json_null_body_is_422_not_an_empty_body(client, user):
    response = client.post("/api/auth/logout", data=b"null", content_type="application/json",
                           headers=user.headers)
    assert assert_problem(response, 422)["errors"]
    assert_problem(client.get("/api/users/me", headers=user.headers), 401)  # a logout always logs out


@pytest.fixture
def spec(client) -> dict:
    return client.get("/openapi.json").get_json()


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "patch", "put", "delete"):
                yield method.upper(), path, operation


def test_every_signed_in_operation_documents_401_with_its_challenge(spec):
    signed_in = [(m, p, op) for m, p, op in operations(spec) if op.get("security")]
    assert len(signed_in) >= 10
    for _, _, operation in signed_in:
        unauthorized = operation["responses"]["401"]
        assert "application/problem+json" in unauthorized["content"]
        assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True


def test_every_api_operation_documents_429_with_retry_after(spec):
    for _, path, operation in operations(spec):
        if path.startswith("/api"):
            assert operation["responses"]["429"]["headers"]["Retry-After"]["required"] is True, path


@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("POST", "/api/users", {"201", "400", "409", "413", "415", "422", "429"}),
    ("PATCH", "/api/posts/{post_id}", {"200", "400", "401", "403", "404", "413", "415", "422", "429"}),
    ("DELETE", "/api/users/{user_id}", {"204", "401", "403", "404", "409", "429"}),
    ("GET", "/api/posts/{post_id}", {"200", "404", "429"}),
    ("GET", "/health/ready", {"200", "503"}),
])
def test_error_statuses_are_documented_as_problem_json(spec, method, path, statuses):
    responses = spec["paths"][path][method.lower()]["responses"]
    assert statuses <= responses.keys()
    for status in statuses:
        response = responses[status]
        if "$ref" in response:
            name = response["$ref"].rsplit("/", 1)[-1]
            response = spec["components"]["responses"][name]
        if int(status) >= 400:
            assert list(response["content"]) == ["application/problem+json"], (path, status)


def test_lists_document_their_link_header_and_creations_their_location(spec):
    assert "Link" in spec["paths"]["/api/posts"]["get"]["responses"]["200"]["headers"]
    assert "Location" in spec["paths"]["/api/posts"]["post"]["responses"]["201"]["headers"]


def test_documented_text_patterns_are_the_ones_the_server_enforces(spec, client, user):
    schema = spec["components"]["schemas"]["PostCreate"]["properties"]
    title, body = re.compile(schema["title"]["pattern"]), re.compile(schema["body"]["pattern"])
    for text in ["tab\there", "nul\x00", "c1\x85", "del\x7f"]:
        assert not title.match(text)
        response = client.post("/api/posts", json={"title": text, "body": "b"}, headers=user.headers)
        assert response.status_code == 422
    assert body.match("line\r\n\tline") and not body.match("bell\x07")


# ---- what the fault scenarios found ----------------------------------------------------


def test_a_connection_dropped_before_the_request_ends_does_not_turn_a_done_request_into_a_500(
        make_app, database_url):
    """PostgreSQL restarting between a request's last query and its end: the rollback at
    teardown fails on the dead connection. The answer already stands; the pool recovers."""
    if not database_url.startswith("postgresql"):
        pytest.skip("needs a database server that can drop the connection")
    from sqlalchemy import text

    from app.extensions import db

    other = make_app()

    @other.get("/test-drop-my-connection")
    def drop_my_connection():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with db.engine.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return {"dropped": pid}

    client = other.test_client()
    pool_room = other.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_size"] + other.config[
        "SQLALCHEMY_ENGINE_OPTIONS"]["max_overflow"]
    for _ in range(pool_room + 2):  # more than the pool holds: no connection may leak
        assert client.get("/test-drop-my-connection").status_code == 200
    assert client.get("/health/ready").status_code == 200


@pytest.mark.parametrize("path", ["/api/posts/{post}", "/api/users/{user}"])
def test_a_patch_without_a_body_is_422_not_a_silent_no_op(client, user, post_id, path):
    response = client.patch(path.format(post=post_id, user=user.id), headers=user.headers)
    assert "_schema" in assert_problem(response, 422)["errors"]
    assert client.patch(path.format(post=post_id, user=user.id), json={}, headers=user.headers).status_code == 200


@pytest.mark.parametrize("value", ["%0D2", "%202", "2%20", "1_0", "%D9%A2", "+2", "2.0", "0x10"])
@pytest.mark.parametrize("name", ["limit", "skip", "author_id"])
def test_query_integers_are_plain_ascii_digits(client, name, value):
    """Python's int() takes whitespace, underscores and other scripts' digits; the API does not."""
    body = assert_problem(client.get(f"/api/posts?{name}={value}"), 422)
    assert name in body["errors"]


@pytest.mark.parametrize("raw", [b"\n", b"   ", b"\r\n\t"])
def test_a_whitespace_only_json_body_is_malformed_not_absent(client, user, raw):
    response = client.post("/api/auth/logout", data=raw, content_type="application/json", headers=user.headers)
    assert_problem(response, 400)
    assert_problem(client.get("/api/users/me", headers=user.headers), 401)  # a logout always logs out
