"""/docs and /redoc in a real browser: they render, load nothing from another host, and their
Content-Security-Policy allows what they load (no violation, no console error)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest


def _watch_requests(page) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_render_offline_without_csp_violations(page, live_server, artifacts, path):
    requests_made = _watch_requests(page)
    response = page.goto(path)
    assert "default-src 'none'" in response.headers["content-security-policy"]
    if path == "/docs":
        page.wait_for_selector(".swagger-ui .info .title")
        assert "Users & Posts API" in page.inner_text(".swagger-ui .info .title")
        page.locator(".opblock-summary").first.click()  # expand an operation: more rendering, same policy
        page.wait_for_selector(".opblock-body")
    else:
        page.wait_for_selector("h1:has-text('Users & Posts API')")
        page.wait_for_selector("text=API docs by Redocly")
        page.fill("input[placeholder='Search...']", "posts")  # the search worker
        page.wait_for_timeout(300)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifacts / f"docs{path.replace('/', '-')}.png"))
    origin = urlsplit(live_server.url).netloc
    foreign = [url for url in requests_made if urlsplit(url).scheme in ("http", "https")
               and urlsplit(url).netloc != origin]
    assert foreign == [], foreign
    assert page.console_problems == []
