"""The content version: one number that moves with every committed change to what lists show.

Migration 0008's triggers bump it in the transaction of every write to posts, users and
follows, whoever writes (API, admin pages, CLI, plain SQL). A list statement reads it
with its rows, so a page knows the version of the very snapshot it shows; the page's
ETag is made of that version, and a `304` for a current page needs only `current()`
instead of the page (app/api/conditional.py).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, cast, func, select

from app.extensions import db
from app.models import ContentVersion

_SUM = cast(func.coalesce(func.sum(ContentVersion.version), 0), BigInteger)
# A column for list statements: evaluated once per statement (an InitPlan), in its snapshot.
CONTENT_VERSION = select(_SUM).scalar_subquery()
# The same sum on its own: the 304's only read.
_CURRENT = select(_SUM.label("version"))


def current() -> int:
    """The content version now, where a page read now would be read (replica or primary)."""
    return db.session.execute(_CURRENT).one().version
