"""The pages the mailed links open: confirming an email address and setting a new password,
HTML forms outside the API, through a real SMTP server the tests start."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.helpers import PASSWORD, link_in, login, signed_in, token_of

NEW_PASSWORD = "N3wPassword"


def register(client, email: str = "ann@example.com"):
    return client.post("/api/users", json={"email": email, "name": "Ann Example", "password": PASSWORD})


def path_of(link: str) -> str:
    parts_ = urlsplit(link)
    return f"{parts_.path}?{parts_.query}"


def test_opening_the_verification_link_changes_nothing_and_its_button_verifies(mail_app):
    app = mail_app()
    client = app.test_client()
    register(client)
    link = link_in(mail_app.box.messages[0], "/verify-email")
    page = client.get(path_of(link))
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "Confirm my email address" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    headers = signed_in(client, "ann@example.com")
    assert client.get("/api/users/me", headers=headers).get_json()["email_verified"] is False
    done = client.post("/verify-email", data={"token": token_of(link)})
    assert done.status_code == 200 and "Email confirmed" in done.text
    assert client.get("/api/users/me", headers=headers).get_json()["email_verified"] is True


def test_the_reset_page_sets_the_password_from_the_link(mail_app, make_user):
    app = mail_app()
    client = app.test_client()
    person = make_user()
    client.post("/api/auth/password-reset", json={"email": person.email})
    link = link_in(mail_app.box.messages[0], "/reset-password")
    page = client.get(path_of(link))
    assert page.status_code == 200 and 'name="password"' in page.text
    token = token_of(link)
    differ = client.post("/reset-password", data={"token": token, "password": NEW_PASSWORD, "confirm": "x"})
    assert differ.status_code == 422 and "differ" in differ.text
    weak = client.post("/reset-password", data={"token": token, "password": "weak", "confirm": "weak"})
    assert weak.status_code == 422 and "bytes long" in weak.text
    done = client.post("/reset-password", data={"token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 200 and "Password changed" in done.text
    assert login(client, person.email, NEW_PASSWORD).status_code == 200
    used = client.get(path_of(link))
    assert used.status_code == 400 and "invalid, expired or already used" in used.text


def test_a_bad_link_page_is_400_without_a_traceback(client):
    for path in ("/reset-password?token=nope", "/reset-password"):
        response = client.get(path)
        assert response.status_code == 400 and "Link not valid" in response.text
    response = client.post("/verify-email", data={"token": "nope"})
    assert response.status_code == 400 and "Traceback" not in response.text
