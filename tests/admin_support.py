"""Helpers for the admin page tests: CSRF tokens come from the rendered HTML, as in a browser."""

from __future__ import annotations

import re
from html import unescape

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import Person

_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
ADMIN_STYLESHEET = "/admin/static/admin.css"


def csrf_token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no csrf_token field in the page"
    return unescape(match.group(1) or match.group(2))


def page_token(client: FlaskClient, path: str = "/admin/login") -> str:
    """A CSRF token as the browser would have it: from a form on a page."""
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return csrf_token(response.get_data(as_text=True))


def sign_in(client: FlaskClient, person: Person, *, password: str | None = None) -> TestResponse:
    token = page_token(client, "/admin/login")
    return client.post("/admin/login", data={"email": person.email, "password": password or person.password,
                                             "csrf_token": token})


def signed_in(client: FlaskClient, person: Person) -> FlaskClient:
    response = sign_in(client, person)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/", response.text
    return client


def submit(client: FlaskClient, path: str, data: dict[str, str] | None = None, *,
           follow: bool = False) -> TestResponse:
    """POST a form with the CSRF token the dashboard's logout form carries."""
    token = page_token(client, "/admin/")
    return client.post(path, data={**(data or {}), "csrf_token": token}, follow_redirects=follow)


def text_of(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def assert_admin_html(response: TestResponse, status: int) -> str:
    """An HTML page in the admin's look (its stylesheet), with this status."""
    body = text_of(response)
    assert response.status_code == status, body
    assert response.mimetype == "text/html"
    assert ADMIN_STYLESHEET in body
    return body


def assert_redirects_to_login(response: TestResponse) -> None:
    assert response.status_code == 302, text_of(response)
    assert response.headers["Location"].startswith("/admin/login")


def pager_link(html: str, rel: str) -> str | None:
    """The href of the pager's link to the `prev` or `next` page, if it shows one."""
    nav = re.search(r'<nav class="pager"[^>]*>(.*?)</nav>', html, re.S)
    assert nav, "no pager on the page"
    match = re.search(rf'<a[^>]*rel="{rel}" href="([^"]+)"[^>]*>', nav.group(1))
    return unescape(match.group(1)) if match else None
