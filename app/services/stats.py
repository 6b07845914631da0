"""Numbers for the admin dashboard: a handful of aggregate queries, no per-row work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from app.extensions import db
from app.models import Post, Role, User

RECENT_DAYS = 7
CHART_DAYS = 30


@dataclass(frozen=True)
class DashboardStats:
    users: int
    admins: int
    inactive_users: int
    posts: int
    new_users: int
    new_posts: int
    posts_per_day: list[tuple[date, int]]  # oldest first, one entry per day, zeros included


class utc_day(FunctionElement):
    """The UTC calendar day of a timestamp column, on PostgreSQL and SQLite alike.

    PostgreSQL's `date(timestamptz)` uses the session time zone, so convert first;
    SQLite stores naive UTC text, which `date()` reads as it is.
    """

    type = Date()
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC' AS DATE)"


def _count_where(condition: ColumnElement[bool]) -> Any:
    return func.count(case((condition, 1)))


def dashboard(now: datetime | None = None) -> DashboardStats:
    """Three queries whatever the table sizes: users, posts, posts grouped by day."""
    now = now or datetime.now(UTC)
    recent = now - timedelta(days=RECENT_DAYS)
    users, admins, inactive, new_users = db.session.execute(
        select(
            func.count(),
            _count_where(User.role == Role.ADMIN),
            _count_where(User.is_active.is_(False)),
            _count_where(User.created_at >= recent),
        ).select_from(User)
    ).one()
    posts, new_posts = db.session.execute(
        select(func.count(), _count_where(Post.created_at >= recent)).select_from(Post)
    ).one()
    return DashboardStats(
        users=users,
        admins=admins,
        inactive_users=inactive,
        posts=posts,
        new_users=new_users,
        new_posts=new_posts,
        posts_per_day=posts_per_day(now),
    )


def posts_per_day(now: datetime | None = None, days: int = CHART_DAYS) -> list[tuple[date, int]]:
    """Posts per UTC day for the last `days` days (today included), in one grouped query."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    day = utc_day(Post.created_at)
    rows = db.session.execute(select(day, func.count()).where(Post.created_at >= start).group_by(day)).all()
    counts = {_as_date(value): count for value, count in rows}
    return [(first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(days)]


def _as_date(value: date | str) -> date:
    """PostgreSQL returns a `date`; SQLite returns its ISO text."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def count_posts_by(author_id: int) -> int:
    stmt = select(func.count()).select_from(Post).where(Post.author_id == author_id)
    return db.session.scalar(stmt) or 0
