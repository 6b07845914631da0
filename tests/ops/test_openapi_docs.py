"""The OpenAPI document, Swagger UI and ReDoc, all served without a CDN."""

import re
from html import unescape

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
        if rule.rule.startswith(("/api", "/health")) or rule.rule == "/":
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
        if url.startswith("data:"):
            continue
        assert url.startswith(("/static/vendor/", "/static/docs/")), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.get_data()) > (1000 if "/vendor/" in url else 50), url
        asset.close()


def test_swagger_ui_does_not_call_the_online_validator(client):
    html = unescape(client.get("/docs").get_data(as_text=True))
    assert '"validatorUrl": null' in html


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_send_a_content_security_policy_and_refuse_framing(client, page):
    response = client.get(page)
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert not re.search(r"<script(?![^>]*\bsrc=)", response.get_data(as_text=True)), "an inline script"


def test_only_redoc_may_write_styles_and_start_a_worker(client):
    swagger = client.get("/docs").headers["Content-Security-Policy"]
    redoc = client.get("/redoc").headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in swagger and "worker-src" not in swagger
    assert "style-src 'self' 'unsafe-inline'" in redoc and "worker-src blob:" in redoc


def test_redoc_loads_no_logo_from_a_cdn(client):
    response = client.get("/static/vendor/redoc/redoc.standalone.js")
    assert b"cdn.redoc.ly" not in response.get_data()
    response.close()


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


# ---- operationIds: what generated clients name their functions -----------------------

OPERATION_IDS = {
    ("GET", "/"): "getIndex",
    ("GET", "/health"): "getHealth",
    ("GET", "/health/ready"): "getReadiness",
    ("POST", "/api/auth/login"): "login",
    ("POST", "/api/auth/refresh"): "refreshTokens",
    ("POST", "/api/auth/logout"): "logout",
    ("POST", "/api/users"): "register",
    ("GET", "/api/users"): "listUsers",
    ("GET", "/api/users/me"): "getMe",
    ("GET", "/api/users/{user_id}"): "getUser",
    ("PATCH", "/api/users/{user_id}"): "updateUser",
    ("DELETE", "/api/users/{user_id}"): "deleteUser",
    ("GET", "/api/users/{user_id}/posts"): "listUserPosts",
    ("GET", "/api/posts"): "listPosts",
    ("POST", "/api/posts"): "createPost",
    ("GET", "/api/posts/{post_id}"): "getPost",
    ("PATCH", "/api/posts/{post_id}"): "updatePost",
    ("DELETE", "/api/posts/{post_id}"): "deletePost",
}


def operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): operation for path, item in spec["paths"].items()
            for method, operation in item.items() if method.upper() in API_METHODS}


def test_every_operation_has_a_short_unique_camel_case_operation_id(spec):
    """New operations too: set one with `@blp.doc(operationId=...)`."""
    ids = {key: operation.get("operationId") for key, operation in operations(spec).items()}
    missing = [key for key, operation_id in ids.items() if not operation_id]
    assert not missing, f"operations without an operationId: {missing}"
    malformed = [i for i in ids.values() if not re.fullmatch(r"[a-z][A-Za-z0-9]{2,39}", i)]
    assert not malformed
    duplicates = {i for i in ids.values() if list(ids.values()).count(i) > 1}
    assert not duplicates, f"operationIds used twice: {duplicates}"


def test_operation_ids_stay_what_clients_were_generated_with(spec):
    ids = {key: operation.get("operationId") for key, operation in operations(spec).items()}
    assert {key: ids.get(key) for key in OPERATION_IDS} == OPERATION_IDS


@pytest.mark.parametrize(("path", "method"), [("/api/users", "post"), ("/api/users/{user_id}", "patch")])
def test_the_password_rules_are_in_the_schema(spec, path, method):
    password = request_schema(spec, path, method)["properties"]["password"]
    assert "8 to 72 bytes long in UTF-8" in password["description"]
    assert "uppercase letter" in password["description"] and "digit" in password["description"]
    assert password["maxLength"] == 72
    assert "8 to 72 bytes long in UTF-8" in spec["paths"][path][method]["description"]


def test_retry_after_is_documented_only_on_429_and_503(spec):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method.upper() not in API_METHODS:
                continue
            for status, response in operation["responses"].items():
                if "Retry-After" in response.get("headers", {}):
                    assert status in ("429", "503"), (method, path, status)


def test_every_counted_request_documents_its_rate_limit_headers(spec):
    for path, operations in spec["paths"].items():
        if not path.startswith("/api"):
            continue
        for method, operation in operations.items():
            if method.upper() not in {"POST", "PATCH", "DELETE"}:
                continue
            success = next(r for s, r in operation["responses"].items() if s.startswith("2"))
            assert "X-RateLimit-Remaining" in success.get("headers", {}), (method, path)


def test_both_user_shapes_are_documented(spec):
    schemas = spec["components"]["schemas"]
    assert set(schemas["PublicUser"]["properties"]) == {"id", "name", "created_at", "followers_count",
                                                        "following_count", "followed_by_me"}
    assert {"email", "age", "role", "is_active"} <= set(schemas["User"]["properties"])
    shapes = [{"$ref": "#/components/schemas/User"}, {"$ref": "#/components/schemas/PublicUser"}]
    one = spec["paths"]["/api/users/{user_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert one["schema"] == {"anyOf": shapes}
    listed = spec["paths"]["/api/users"]["get"]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"] == {"type": "array", "items": {"anyOf": shapes}}
    assert "Link" in listed["headers"]
    me = spec["paths"]["/api/users/me"]["get"]["responses"]["200"]["content"]["application/json"]
    assert me["schema"] == {"$ref": "#/components/schemas/User"}


# ---- what OpenAPI linters check (Redocly CLI `recommended`, Spectral `spectral:oas`), without npm ----

def test_every_operation_has_a_summary_a_description_and_a_4xx_answer(spec):
    for key, operation in operations(spec).items():
        assert operation.get("summary", "").strip(), key
        assert operation.get("description", "").strip(), key
        assert any(status.startswith("4") for status in operation["responses"]), key


def test_every_operation_states_its_security_as_it_behaves(spec, client):
    """`security: []` exactly on the operations that answer without a token: each operation is
    called without one and must not be a 401 when it says it is public, and must be one when it
    names the bearer scheme. No hand-kept list of public operations: a new one needs no entry."""
    schemes = spec["components"]["securitySchemes"].keys()
    for (method, path), operation in operations(spec).items():
        key = (method, path)
        assert "security" in operation, f"{key} has no explicit security (`[]` when public)"
        assert all(requirement.keys() <= schemes for requirement in operation["security"]), key
        url = re.sub(r"\{\w+\}", "1", path)
        status = client.open(url, method=method, json={} if method in ("POST", "PUT", "PATCH") else None).status_code
        assert (status == 401) == (operation["security"] != []), (key, status)


def test_the_document_names_its_servers_license_and_contact(spec):
    assert spec["servers"], "no servers"
    for server in spec["servers"]:
        assert server["url"].startswith(("http://", "https://")) and not server["url"].endswith("/"), server
        assert "example.com" not in server["url"]
    info = spec["info"]
    assert info["license"]["name"] and info["license"]["url"].startswith("https://")
    assert info["contact"]["name"]


def test_the_description_teaches_signing_in_and_paging(spec):
    description = spec["info"]["description"]
    for step in ("POST /api/users", "POST /api/auth/login", "Authorization: Bearer <access_token>",
                 "POST /api/auth/refresh", "Authorization: Bearer <refresh_token>", 'Link: <url>; rel="next"'):
        assert step in description, step


def references(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(references(value) for value in node))
    return set()


def test_every_component_is_used(spec):
    """Reached from the paths, directly or through other components: nothing unused."""
    reached: set[str] = set()
    waiting = references({key: value for key, value in spec.items() if key != "components"})
    while waiting:
        ref = waiting.pop()
        if ref not in reached:
            reached.add(ref)
            _, _, kind, name = ref.split("/")
            waiting |= references(spec["components"][kind][name])
    defined = {f"#/components/{kind}/{name}" for kind, items in spec["components"].items()
               if kind != "securitySchemes" for name in items}
    assert defined - reached == set()
    used_schemes = {name for operation in operations(spec).values() for requirement in operation["security"]
                    for name in requirement}
    assert used_schemes == spec["components"]["securitySchemes"].keys()
