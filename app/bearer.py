"""The one reader of `Authorization: Bearer <token>`, and the one verifier of its JWT.

The auth scheme is case-insensitive (RFC 9110 §11.1): login answers
`"token_type": "bearer"`, and clients send it back as they got it.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import Any

import flask_jwt_extended
import jwt
from flask import Flask
from flask_jwt_extended.config import config
from flask_jwt_extended.tokens import _decode_jwt

SCHEME = "Bearer"


def bearer_token(header: str | None) -> str | None:
    """The token of a `Bearer` credential in any case, or None for anything else."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != SCHEME.lower() or not token or any(ch.isspace() for ch in token):
        return None
    return token


def canonical_authorization(header: str | None) -> str | None:
    """The header as flask-jwt-extended expects it (`Bearer <token>`, that case exactly),
    or None when it is no bearer credential (the library then answers as it always does)."""
    token = bearer_token(header)
    return f"{SCHEME} {token}" if token is not None else None


class JWTManager(flask_jwt_extended.JWTManager):
    """flask-jwt-extended, verifying each token once per worker, in one parse.

    Before its verified decode, the library parses every token twice more, unverified, to
    hand its header and claims to a `decode_key_loader`; this app has none (one HS256 key).
    PyJWT checks every character of every segment on each parse: the two spare parses cost
    8% of an authenticated request on their own, and the verified parse another 6%
    (bench/where-the-time-goes.md). So this private method is overridden with the library's
    own verified decode (`_decode_jwt`) alone, and its result is kept per token (`VerifiedTokens`).
    The library's read of the header, after this method, still parses once per request.
    """

    def __init__(self, app: Flask | None = None, add_context_processor: bool = False) -> None:
        self.verified = VerifiedTokens()
        super().__init__(app, add_context_processor)

    def _decode_jwt_from_config(self, encoded_token: str, csrf_value: str | None = None,
                                allow_expired: bool = False) -> dict:
        options = {
            "algorithms": config.decode_algorithms,
            "audience": config.decode_audience,
            "csrf_value": csrf_value,
            "encoded_token": encoded_token,
            "identity_claim_key": config.identity_claim_key,
            "issuer": config.decode_issuer,
            "leeway": config.leeway,
            "secret": config.decode_key,
            "verify_aud": config.decode_audience is not None,
            "verify_sub": config.verify_sub,
        }
        if allow_expired:
            return _decode_jwt(**options, allow_expired=True)
        known = self.verified.get(options)
        if known is not None:
            return known
        try:
            claims = _decode_jwt(**options, allow_expired=False)
        except jwt.ExpiredSignatureError as error:  # what the library attaches, for the expired-token loader
            error.jwt_header = jwt.get_unverified_header(encoded_token)  # type: ignore[attr-defined]
            error.jwt_data = _decode_jwt(**options, allow_expired=True)  # type: ignore[attr-defined]
            raise
        self.verified.add(options, claims)
        return claims


class VerifiedTokens:
    """The claims of tokens this worker has verified, by the token and everything it was verified
    with (the key above all), until they expire.

    Verifying is a pure function of those and the clock, so a token seen again (every request of
    a signed-in client) needs no second parse; only `exp` moves with time, and it is checked on
    every hit as PyJWT checks it. Whether the token's session is still alive is not verifying: the
    revocation check asks the database on every request, cached or not.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._claims: dict[tuple, dict] = {}

    @staticmethod
    def _key(options: dict[str, Any]) -> tuple:
        return tuple(tuple(value) if isinstance(value, list) else value for value in options.values())

    def get(self, options: dict[str, Any]) -> dict | None:
        key = self._key(options)
        claims = self._claims.get(key)
        if claims is None:
            return None
        leeway = options["leeway"]
        if isinstance(leeway, timedelta):
            leeway = leeway.total_seconds()
        if claims["exp"] <= time.time() - leeway:
            self._claims.pop(key, None)
            return None  # the full decode answers with the library's own expiry error
        return dict(claims)  # a copy: callers may add to theirs

    def add(self, options: dict[str, Any], claims: dict) -> None:
        if "exp" not in claims:
            return  # tokens without an expiry are refused later; never remember one
        if len(self._claims) >= self.size:
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):  # another thread was first
                del self._claims[next(iter(self._claims))]  # the oldest
        self._claims[self._key(options)] = dict(claims)  # its own copy: the caller's may change
