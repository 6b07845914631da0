"""The business rules, shared by the API and the admin pages.

Services know the database, not HTTP: they take plain values, add and flush their
changes (never commit: the request or CLI command does, once, at its boundary) and raise
`app.errors.DomainError`s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from app.errors import Conflict, PreconditionFailed
from app.extensions import db

# Called by a write on the row it is about to change, once the actor may change it:
# raises `PreconditionFailed` (or `PreconditionRequired`) when the caller's copy is stale.
Precondition = Callable[[Any], None]
STALE_WRITE = "The resource was changed or deleted by someone else meanwhile. Read it again, then retry."


def no_precondition(_row: Any) -> None:
    return None


def expect_version(version: int | None, detail: str) -> Precondition:
    """The precondition of a form that carried the row's version (the admin pages)."""

    def check(row: Any) -> None:
        if version is not None and row.version != version:
            raise PreconditionFailed(detail)

    return check


def is_unique_violation(error: IntegrityError) -> bool:
    """SQLSTATE 23505 on PostgreSQL; SQLite says so in its message."""
    code = getattr(error.orig, "pgcode", None)
    return code == "23505" or "UNIQUE constraint failed" in str(error.orig)


def flush(conflict: str | None = None) -> None:
    """Send the unit of work's changes to the database, inside the request's transaction (the
    request, or the CLI command, commits once at its boundary: `app.transaction`).

    A row whose version moved since it was read (the `WHERE version = :v` of the UPDATE or
    DELETE matched nothing) is a PreconditionFailed: the check and the write are one statement,
    so two writers can never both pass. With `conflict`, a unique violation is a Conflict (the
    constraint is what makes races safe). Either way the transaction is rolled back."""
    try:
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise PreconditionFailed(STALE_WRITE) from None
    except IntegrityError as error:
        db.session.rollback()
        if conflict is not None and is_unique_violation(error):
            raise Conflict(conflict) from None
        raise
