"""Email addresses as the service keys them: one account per address, whatever its case."""

from __future__ import annotations

MAX_KEY_LENGTH = 320


def normalise_email(email: str) -> str:
    return email.strip().lower()


def email_key(email: str) -> str:
    """An address as a counter's key: any text may arrive before validation, so the key is
    bounded and always encodable (Redis takes bytes)."""
    return normalise_email(email)[:MAX_KEY_LENGTH].encode("utf-8", "backslashreplace").decode()
