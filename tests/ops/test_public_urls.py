"""The Host header never ends up in a URL: links come from `PUBLIC_BASE_URL`, other hosts are refused."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time

import pytest
import requests
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models import OutboxMessage
from config import ConfigurationError
from scripts.live_server import LiveServer, free_port
from tests.helpers import assert_problem, next_url, production_settings


def test_without_public_base_url_links_follow_the_request(make_app, client, user, make_post):
    for i in range(2):
        make_post(user, f"Post {i}", "b")
    unset = make_app(PUBLIC_BASE_URL="").test_client()
    response = unset.get("/api/posts?limit=1", base_url="http://api.internal.test")
    assert next_url(response).startswith("http://api.internal.test/api/posts?")


def test_in_development_links_lead_to_the_port_the_server_was_started_on(app, user, database_url, make_post):
    """PUBLIC_BASE_URL left unset, as `PORT=... make run` leaves it: the `Link` header, the
    OpenAPI `servers` (Swagger's try-it-out) and the mailed links (rendered when the request
    queues them: read from the outbox) name this server's port."""
    for i in range(2):
        make_post(user, f"Post {i}", "b")
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in ("PUBLIC_BASE_URL", "TRUSTED_HOSTS")}
    env.update(APP_ENV="development", DATABASE_URL=database_url, WEB_CONCURRENCY="1", LOG_LEVEL="INFO",
               SECRET_KEY=secrets.token_urlsafe(48), JWT_SECRET_KEY=secrets.token_urlsafe(48))
    server = LiveServer.start(env=env, port=port, workers=1)
    base = f"http://127.0.0.1:{port}"
    try:
        page = requests.get(f"{base}/api/posts?limit=1", timeout=10)
        assert page.links["next"]["url"].startswith(f"{base}/api/posts?limit=1&cursor="), page.headers["Link"]
        document = requests.get(f"{base}/openapi.json", timeout=10).json()
        assert [entry["url"] for entry in document["servers"]] == [base]
        reset = requests.post(f"{base}/api/auth/password-reset", json={"email": user.email}, timeout=10)
        assert reset.status_code == 202, reset.text
    finally:
        server.stop()
    with app.app_context():
        [queued] = db.session.scalars(select(OutboxMessage.body_text)).all()
    assert f"{base}/reset-password?token=" in queued


def test_a_forged_host_never_reaches_the_link_header(make_app, client, user, make_post):
    for i in range(2):
        make_post(user, f"Post {i}", "b")
    public = make_app(PUBLIC_BASE_URL="https://api.example.org/").test_client()
    response = public.get("/api/posts?limit=1", headers={"Host": "evil.example"})
    assert response.status_code == 200
    url = next_url(response)
    assert url.startswith("https://api.example.org/api/posts?limit=1&cursor="), url
    assert "evil" not in response.headers["Link"]
    assert next_url(public.get(f"/api/users/{user.id}/posts?limit=1")).startswith(
        f"https://api.example.org/api/users/{user.id}/posts?")


def test_the_openapi_servers_are_the_public_base_url_whatever_the_host(make_app):
    public = make_app(PUBLIC_BASE_URL="https://example.org/users-api").test_client()
    document = public.get("/openapi.json", headers={"Host": "evil.example"}).get_json()
    assert [server["url"] for server in document["servers"]] == ["https://example.org/users-api"]


def test_public_base_url_may_carry_a_path_prefix(make_app, client, user, make_post):
    for i in range(2):
        make_post(user, f"Post {i}", "b")
    public = make_app(PUBLIC_BASE_URL="https://example.org/users-api").test_client()
    assert next_url(public.get("/api/posts?limit=1")).startswith("https://example.org/users-api/api/posts?")


@pytest.mark.parametrize("path", ["/api/posts", "/api/users/me", "/health", "/openapi.json", "/nope"])
def test_an_untrusted_host_is_400_problem_json(make_app, path):
    client = make_app(TRUSTED_HOSTS=["api.example.org"]).test_client()
    body = assert_problem(client.get(path, headers={"Host": "evil.example"}), 400)
    assert "evil.example" not in body["detail"] or "not trusted" in body["detail"]


def test_trusted_hosts_accept_their_own_names_with_any_port(make_app):
    client = make_app(TRUSTED_HOSTS="api.example.org, .internal.example").test_client()
    for host in ("api.example.org", "api.example.org:8443", "lb.internal.example"):
        assert client.get("/health", headers={"Host": host}).status_code == 200, host


def test_an_untrusted_host_on_the_admin_pages_is_400(make_app):
    client = make_app(TRUSTED_HOSTS=["api.example.org"]).test_client()
    assert client.get("/admin/login", headers={"Host": "evil.example"}).status_code == 400


def test_the_forwarded_host_is_checked_too_behind_a_proxy(make_app):
    client = make_app(TRUSTED_HOSTS=["api.example.org"], PROXY_FIX_HOPS=1).test_client()
    forged = {"Host": "api.example.org", "X-Forwarded-Host": "evil.example"}
    assert_problem(client.get("/health", headers=forged), 400)


# ---- configuration ---------------------------------------------------------------

PRODUCTION = production_settings(SQLALCHEMY_DATABASE_URI="sqlite://")


def test_production_refuses_to_start_without_public_base_url():
    with pytest.raises(ConfigurationError, match="PUBLIC_BASE_URL must be set"):
        create_app({**PRODUCTION, "PUBLIC_BASE_URL": ""})


def test_production_trusts_only_the_public_host_unless_told_otherwise():
    app = create_app({**PRODUCTION, "PUBLIC_BASE_URL": "https://api.example.org"})
    assert app.config["TRUSTED_HOSTS"] == ["api.example.org"]
    client = app.test_client()
    assert client.get("/health", headers={"Host": "api.example.org"}).status_code == 200
    assert_problem(client.get("/health", headers={"Host": "evil.example"}), 400)


@pytest.mark.parametrize("url", ["api.example.org", "ftp://api.example.org", "https://api.example.org/?a=1",
                                 "https://user@api.example.org", "https://"])
def test_a_public_base_url_that_is_no_absolute_http_url_is_refused(url):
    with pytest.raises(ConfigurationError, match="PUBLIC_BASE_URL must be an absolute"):
        create_app({"APP_ENV": "testing", "PUBLIC_BASE_URL": url})


# ---- nginx (deploy/nginx.conf.template) -----------------------------------------------------

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs Debian's nginx)")
def test_nginx_passes_only_its_own_host_to_the_app(live_server):
    from scripts.faults.slow_clients import start_nginx

    process, port, prefix = start_nginx(int(live_server.url.rsplit(":", 1)[1]))
    try:
        url = f"http://127.0.0.1:{port}/api/posts"
        assert requests.get(url, timeout=5).status_code == 200  # the configured name (127.0.0.1 here)
        for host in ("evil.example", "", "127.0.0.1.evil.example"):
            response = requests.get(url, headers={"Host": host}, timeout=5)
            assert response.status_code == 400, host
            assert response.headers["Content-Type"] == "application/problem+json"
            # nginx itself refuses an empty Host as malformed, before any server block sees it
            assert response.json()["detail"] == ("Unknown host." if host else "The request is malformed.")
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(prefix, ignore_errors=True)



@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs Debian's nginx)")
def test_nginx_logs_the_mailed_links_without_their_token(live_server):
    from scripts.faults.slow_clients import start_nginx

    process, port, prefix = start_nginx(int(live_server.url.rsplit(":", 1)[1]), access_log=True)
    try:
        base = f"http://127.0.0.1:{port}"
        secrets = [f"secret-token-{n}-{time.time_ns()}" for n in range(6)]
        sent = [
            requests.get(f"{base}/reset-password?token={secrets[0]}", timeout=5),
            requests.get(f"{base}/verify-email?token={secrets[1]}", timeout=5),
            requests.post(f"{base}/reset-password?token={secrets[2]}", data={"password": "x", "confirm": "y"},
                          timeout=5),
            requests.post(f"{base}/verify-email?token={secrets[3]}&next=1", timeout=5),
            requests.get(f"{base}/%72eset-password?token={secrets[4]}", timeout=5),  # other spellings too
            requests.get(f"{base}//verify-email/?token={secrets[5]}", timeout=5, allow_redirects=False),
            requests.get(f"{base}/api/posts?limit=2&marker=logged", timeout=5),
            requests.get(f"{base}/no/such/page?token=not-a-mailed-link", timeout=5),
        ]
        assert all(response.status_code < 500 for response in sent)
        log = prefix / "logs" / "access.log"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(log.read_text().splitlines()) < len(sent):
            time.sleep(0.05)  # nginx writes a line once the response is sent
        lines = log.read_text().splitlines()
        assert len(lines) == len(sent), lines
        for secret in secrets:
            assert secret not in log.read_text()
        combined = re.compile(r'^127\.0\.0\.1 - - \[[^]]+\] "(?P<request>[^"]*)" \d{3} \d+ "[^"]*" "[^"]*"$')
        requests_logged = [combined.match(line)["request"] for line in lines]
        assert requests_logged == [
            "GET /reset-password HTTP/1.1", "GET /verify-email HTTP/1.1",
            "POST /reset-password HTTP/1.1", "POST /verify-email HTTP/1.1",
            "GET /reset-password HTTP/1.1", "GET /verify-email/ HTTP/1.1",
            "GET /api/posts?limit=2&marker=logged HTTP/1.1",  # any other path keeps its query
            "GET /no/such/page?token=not-a-mailed-link HTTP/1.1",
        ]
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(prefix, ignore_errors=True)
