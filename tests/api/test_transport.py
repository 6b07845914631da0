"""What wraps every response: gzip, CORS and the request id."""

import gzip
import json
import re

import pytest
from flask import Response

GOOD_ORIGIN = "https://app.example.com"


# ---- gzip ----------------------------------------------------------------------


def test_large_response_is_gzipped_when_accepted(client, user, make_post):
    for i in range(10):
        make_post(user, f"Post {i}", "x" * 300)
    plain = client.get("/api/posts")
    assert len(plain.get_data()) >= 1000
    assert "Content-Encoding" not in plain.headers
    response = client.get("/api/posts", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers.get("Vary", "")
    compressed = response.get_data()
    assert len(compressed) < len(plain.get_data())
    assert json.loads(gzip.decompress(compressed)) == plain.get_json()


def test_small_response_is_not_gzipped(client):
    response = client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert len(response.get_data()) < 1000
    assert "Content-Encoding" not in response.headers
    assert response.get_json() == {"status": "healthy"}


def test_large_response_is_not_gzipped_for_clients_that_do_not_accept_it(client, user, make_post):
    for i in range(10):
        make_post(user, f"Post {i}", "x" * 300)
    response = client.get("/api/posts", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in response.headers
    assert len(response.get_json()) == 10


@pytest.mark.parametrize(("size", "compressed"), [(999, False), (1000, True)])
def test_gzip_threshold_is_1000_bytes(make_app, size, compressed):
    app = make_app()

    @app.get("/api/sized")
    def sized():
        return Response("[" + " " * (size - 2) + "]", mimetype="application/json")

    response = app.test_client().get("/api/sized", headers={"Accept-Encoding": "gzip"})
    assert (response.headers.get("Content-Encoding") == "gzip") is compressed
    data = response.get_data()
    assert len(gzip.decompress(data) if compressed else data) == size


# ---- CORS ----------------------------------------------------------------------


@pytest.fixture
def cors_client(make_app):
    return make_app(CORS_ORIGINS=[GOOD_ORIGIN, "http://localhost:3000"]).test_client()


@pytest.mark.parametrize("origin", [GOOD_ORIGIN, "http://localhost:3000"])
def test_configured_origin_is_allowed(cors_client, origin):
    response = cors_client.get("/api/posts", headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
    exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"link", "location", "x-request-id"} <= exposed
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_preflight_from_configured_origin_allows_bearer_writes(cors_client):
    response = cors_client.options(
        "/api/posts",
        headers={
            "Origin": GOOD_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == GOOD_ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers


@pytest.mark.parametrize(
    "origin", ["https://evil.example.com", "null", "https://app.example.com.evil.net", "http://app.example.com"]
)
def test_other_origins_get_no_cors_headers(cors_client, origin):
    response = cors_client.get("/api/posts", headers={"Origin": origin})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = cors_client.options("/api/posts", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_no_origin_is_allowed_when_none_is_configured(make_app):
    client = make_app(CORS_ORIGINS=[]).test_client()
    response = client.get("/api/posts", headers={"Origin": GOOD_ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options("/api/posts", headers={"Origin": GOOD_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert not [name for name, _ in preflight.headers if name.startswith("Access-Control-")]


def test_cors_headers_are_on_error_responses_too(cors_client):
    response = cors_client.get("/api/users/me", headers={"Origin": GOOD_ORIGIN})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == GOOD_ORIGIN


# ---- request id ----------------------------------------------------------------


def test_incoming_request_id_is_echoed(client):
    response = client.get("/health", headers={"X-Request-ID": "trace-abc.123:x_y"})
    assert response.headers["X-Request-ID"] == "trace-abc.123:x_y"


def test_request_id_is_generated_when_missing(client):
    first = client.get("/health").headers["X-Request-ID"]
    second = client.get("/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", "<script>", "é"])
def test_unsafe_request_id_is_replaced(client, bad):
    response = client.get("/health", headers={"X-Request-ID": bad})
    assert response.headers["X-Request-ID"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_request_id_is_on_error_responses(client):
    response = client.get("/api/nope", headers={"X-Request-ID": "err-42"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "err-42"


def test_request_is_logged_with_method_path_status_and_id(client, caplog):
    with caplog.at_level("INFO", logger="app.request"):
        client.get("/api/posts/424242", headers={"X-Request-ID": "log-me-1"})
    line = next(r.getMessage() for r in caplog.records if "log-me-1" in r.getMessage())
    assert re.search(r"GET /api/posts/424242 404 [\d.]+ms", line)
