"""Numbers for the admin dashboard, at the same cost whatever the size of the tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, literal_column, not_, select

from app.extensions import db
from app.models import DailyCount, Post, User

RECENT_DAYS = 7
CHART_DAYS = 30


@dataclass(frozen=True)
class DashboardStats:
    users: int
    admins: int
    inactive_users: int
    posts: int
    new_users: int  # created on the last RECENT_DAYS UTC days, today included
    new_posts: int  # the same days: the sum of the chart's last RECENT_DAYS bars
    posts_per_day: list[tuple[date, int]]  # oldest first, one entry per day, zeros included
    recent_since: date  # the first day the "new" figures count


def first_recent_day(now: datetime | None = None) -> date:
    """The first of the RECENT_DAYS whole UTC days the "new" figures count (today is the last)."""
    return (now or datetime.now(UTC)).astimezone(UTC).date() - timedelta(days=RECENT_DAYS - 1)


# Built once with bound parameters (`since`, `first`): SQLAlchemy compiles each statement once.
_counts = DailyCount.__table__.c


def _counted(subject: str, *, recent: bool = False) -> Any:
    """The sum of a subject's counters (since `since`, if `recent`): one aggregate of a scan of
    `daily_counts` that all of them share."""
    which = _counts.subject == subject
    if recent:
        which = and_(which, _counts.day >= bindparam("since", type_=_counts.day.type))
    return func.coalesce(func.sum(_counts.count).filter(which), 0)


def _count_of_users(*which: Any) -> Any:
    return select(func.count()).select_from(User).where(*which).scalar_subquery()


_FIGURES = (
    select(
        _counted("users").label("users"),
        _count_of_users(User.role == literal_column("'admin'")).label("admins"),
        _count_of_users(not_(User.is_active)).label("inactive_users"),
        _counted("posts").label("posts"),
        _counted("users", recent=True).label("new_users"),
    )
    .select_from(DailyCount.__table__)
    .subquery("figures")
)
_CHART_DAYS = and_(_counts.subject == "posts", _counts.day >= bindparam("first", type_=_counts.day.type))
# The figures' one row, beside each day of the chart that has a counter (or beside nothing).
_DASHBOARD = select(_FIGURES, _counts.day.label("chart_day"), _counts.count.label("chart_count")).select_from(
    _FIGURES.outerjoin(DailyCount.__table__, _CHART_DAYS)
)


def dashboard(now: datetime | None = None) -> DashboardStats:
    """One statement that reads no row of `posts` and no user but admins and inactive ones.

    Totals and the "new" figures come from `daily_counts` (kept by triggers), so the "new"
    figures count whole UTC days (decision 0015): counting the partial first day of a rolling
    week from rows would read up to a day of posts. Admins and inactive users are counted
    through their partial indexes. The chart's days come in the same statement, each beside
    the figures.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    since, first = first_recent_day(now), _first_chart_day(now)
    rows = db.session.execute(_DASHBOARD, {"since": since, "first": first}).all()
    figures = rows[0]
    chart = _series(first, [(row.chart_day, row.chart_count) for row in rows if row.chart_day is not None])
    return DashboardStats(
        users=figures.users,
        admins=figures.admins,
        inactive_users=figures.inactive_users,
        posts=figures.posts,
        new_users=figures.new_users,
        new_posts=sum(count for _, count in chart[-RECENT_DAYS:]),  # the same days, already read for the chart
        posts_per_day=chart,
        recent_since=since,
    )


def _first_chart_day(now: datetime) -> date:
    return now.astimezone(UTC).date() - timedelta(days=CHART_DAYS - 1)


def _series(first: date, rows: Sequence[tuple[date, int]]) -> list[tuple[date, int]]:
    """One entry per day from `first`, oldest first, zeros included."""
    counts = dict(rows)
    return [(first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(CHART_DAYS)]


def count_posts_by(author_id: int) -> int:
    stmt = select(func.count()).select_from(Post).where(Post.author_id == author_id)
    return db.session.scalar(stmt) or 0
