"""Flask's signed-cookie sessions, with the signing serializer built once per key.

Flask builds a new `URLSafeTimedSerializer` on every request, whether or not the
request touches the session: about 3% of an API request, which never does
(bench/where-the-time-goes.md). The keys rarely change; the serializer is rebuilt when they do.
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class SessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._serializer: tuple[tuple, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if self._serializer is None or self._serializer[0] != keys:
            self._serializer = (keys, super().get_signing_serializer(app))
        return self._serializer[1]
