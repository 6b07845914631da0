"""The one reader of `Authorization: Bearer <token>`, and the one verifier of its JWT.

The auth scheme is case-insensitive (RFC 9110 §11.1): login answers
`"token_type": "bearer"`, and clients send it back as they got it.
"""

from __future__ import annotations

import flask_jwt_extended
import jwt
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
    """flask-jwt-extended, verifying a token in one parse instead of three.

    Before its verified decode, the library parses every token twice more, unverified, to
    hand its header and claims to a `decode_key_loader`; this app has none (one HS256 key).
    PyJWT checks every character of every segment on each parse: the two spare parses cost
    8% of an authenticated request on their own (bench/where-the-time-goes.md), so this
    private method is overridden with the library's own verified decode (`_decode_jwt`) alone.
    """

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
        try:
            return _decode_jwt(**options, allow_expired=allow_expired)
        except jwt.ExpiredSignatureError as error:  # what the library attaches, for the expired-token loader
            error.jwt_header = jwt.get_unverified_header(encoded_token)  # type: ignore[attr-defined]
            error.jwt_data = _decode_jwt(**options, allow_expired=True)  # type: ignore[attr-defined]
            raise
