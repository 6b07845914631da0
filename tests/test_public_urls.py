"""The Host header never ends up in a URL: links come from `PUBLIC_BASE_URL`, other hosts are refused."""

from __future__ import annotations

import os
import shutil

import pytest
import requests

from app import create_app
from config import ConfigurationError
from tests.helpers import assert_problem, production_settings
from tests.test_pagination import create_posts, next_url


def test_without_public_base_url_links_follow_the_request(make_app, client, user):
    create_posts(client, user, 2)
    unset = make_app(PUBLIC_BASE_URL="").test_client()
    response = unset.get("/api/posts?limit=1", base_url="http://api.internal.test")
    assert next_url(response).startswith("http://api.internal.test/api/posts?")


def test_a_forged_host_never_reaches_the_link_header(make_app, client, user):
    create_posts(client, user, 2)
    public = make_app(PUBLIC_BASE_URL="https://api.example.org/").test_client()
    response = public.get("/api/posts?limit=1", headers={"Host": "evil.example"})
    assert response.status_code == 200
    url = next_url(response)
    assert url.startswith("https://api.example.org/api/posts?limit=1&cursor="), url
    assert "evil" not in response.headers["Link"]
    assert next_url(public.get(f"/api/users/{user.id}/posts?limit=1")).startswith(
        f"https://api.example.org/api/users/{user.id}/posts?")


def test_public_base_url_may_carry_a_path_prefix(make_app, client, user):
    create_posts(client, user, 2)
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


# ---- nginx (deploy/nginx.conf) -----------------------------------------------------

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
