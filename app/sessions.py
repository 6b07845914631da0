"""Flask's signed-cookie sessions, opened only for requests that carry a session cookie.

Flask opens the session of every request, building an `itsdangerous` signer each time,
though no API request has a session (bearer tokens are their credentials), and that work
showed in the profile of every list request. Without the cookie the session is the same empty
one Flask would have made; `open_session` is the documented override point.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class SessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)
