"""The one reader of `Authorization: Bearer <token>`.

The auth scheme is case-insensitive (RFC 9110 §11.1): login answers
`"token_type": "bearer"`, and clients send it back as they got it.
"""

from __future__ import annotations

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
