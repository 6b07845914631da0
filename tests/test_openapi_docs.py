"""The OpenAPI document, Swagger UI and ReDoc, all served without a CDN."""

import re

import pytest

API_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def schema_of(spec: dict, ref_holder: dict) -> dict:
    ref = ref_holder["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def request_schema(spec: dict, path: str, method: str) -> dict:
    body = spec["paths"][path][method]["requestBody"]["content"]["application/json"]
    return schema_of(spec, body["schema"])


def test_document_is_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]


def test_document_lists_every_api_route_and_method(app, spec):
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api", "/health")):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes.setdefault(path, set()).update(rule.methods & API_METHODS)
    assert routes, "no API routes found"
    documented = {path: {m.upper() for m in ops if m.upper() in API_METHODS} for path, ops in spec["paths"].items()}
    assert documented == routes


@pytest.mark.parametrize(
    "path",
    [
        "/api/users",
        "/api/users/me",
        "/api/users/{user_id}",
        "/api/users/{user_id}/posts",
        "/api/posts",
        "/api/posts/{post_id}",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/health",
        "/health/ready",
    ],
)
def test_contract_paths_are_documented(spec, path):
    assert path in spec["paths"]


def test_registration_schema_is_the_validating_schema(spec):
    schema = request_schema(spec, "/api/users", "post")
    assert set(schema["properties"]) == {"email", "name", "password", "age"}
    assert set(schema["required"]) == {"email", "name", "password"}
    assert schema["additionalProperties"] is False
    assert schema["properties"]["name"]["minLength"] == 2
    assert schema["properties"]["name"]["maxLength"] == 100
    assert (schema["properties"]["age"]["minimum"], schema["properties"]["age"]["maximum"]) == (18, 120)
    assert schema["properties"]["password"].get("writeOnly") is True
    assert schema["properties"]["email"]["maxLength"] == 254


def test_user_update_schema_documents_every_changeable_field(spec):
    schema = request_schema(spec, "/api/users/{user_id}", "patch")
    assert set(schema["properties"]) == {"email", "name", "age", "password", "current_password", "role", "is_active"}
    assert schema["properties"]["is_active"]["type"] == "boolean"
    assert schema["additionalProperties"] is False


def test_post_and_login_schemas(spec):
    post = request_schema(spec, "/api/posts", "post")
    assert set(post["required"]) == {"title", "body"}
    assert post["properties"]["title"]["maxLength"] == 200
    assert post["properties"]["body"]["maxLength"] == 50_000
    login = request_schema(spec, "/api/auth/login", "post")
    assert set(login["properties"]) == {"email", "password", "device_token"}
    assert set(login["required"]) == {"email", "password"}


def test_user_response_schema_has_no_secrets(spec):
    created = spec["paths"]["/api/users"]["post"]["responses"]["201"]
    user = schema_of(spec, created["content"]["application/json"]["schema"])
    assert "password" not in user["properties"]
    assert "password_hash" not in user["properties"]
    assert "Location" in created["headers"]


def test_pagination_parameters_are_documented(spec):
    params = {p["name"]: p for p in spec["paths"]["/api/posts"]["get"]["parameters"]}
    assert {"limit", "cursor", "skip", "author_id", "q"} <= params.keys()
    limit = params["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 20)


def test_errors_are_documented_as_problem_details(spec):
    response = spec["components"]["responses"]["UNPROCESSABLE_ENTITY"]
    (content_type,) = response["content"]
    assert content_type == "application/problem+json"
    problem = schema_of(spec, response["content"][content_type]["schema"])
    assert {"type", "title", "status", "detail", "errors"} == set(problem["properties"])


def test_bearer_security_scheme_is_declared(spec):
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert spec["paths"]["/api/users/me"]["get"]["security"] == [{"bearerAuth": []}]


def asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_local_assets(client, page):
    response = client.get(page)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "/openapi.json" in html
    assert not re.search(r"https?://", html), "the page loads something from another host"
    urls = asset_urls(html)
    assert urls, "no scripts or styles found"
    assert any(url.endswith(".js") for url in urls)
    for url in urls:
        assert url.startswith("/static/vendor/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.get_data()) > 1000, url
        asset.close()


def test_swagger_ui_does_not_call_the_online_validator(client):
    html = client.get("/docs").get_data(as_text=True)
    assert '"validatorUrl": null' in html


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "javascript"),
        ("/static/vendor/swagger-ui/swagger-ui-standalone-preset.js", "javascript"),
        ("/static/vendor/swagger-ui/swagger-ui.css", "css"),
        ("/static/vendor/redoc/redoc.standalone.js", "javascript"),
    ],
)
def test_vendored_assets_are_served(client, url, kind):
    response = client.get(url)
    assert response.status_code == 200
    assert response.mimetype.endswith(kind)
    response.close()
