"""Numbers for the admin dashboard, at the same cost whatever the size of the tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, not_, select

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


def dashboard(now: datetime | None = None) -> DashboardStats:
    """Two statements that read no row of `posts` and no user but admins and inactive ones.

    Totals and the "new" figures come from `daily_counts` (kept by triggers), so the "new"
    figures count whole UTC days (decision 0015): counting the partial first day of a rolling
    week from rows would read up to a day of posts. Admins and inactive users are counted
    through their partial indexes.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    since = first_recent_day(now)

    def counted(subject: str, since: date | None = None) -> Any:
        stmt = select(func.coalesce(func.sum(DailyCount.count), 0)).where(DailyCount.subject == subject)
        if since is not None:
            stmt = stmt.where(DailyCount.day >= since)
        return stmt.scalar_subquery()

    admins = select(func.count()).select_from(User).where(User.role == literal_column("'admin'"))
    inactive = select(func.count()).select_from(User).where(not_(User.is_active))
    users, admin_count, inactive_count, posts, new_users = db.session.execute(
        select(
            counted("users"),
            admins.scalar_subquery(),
            inactive.scalar_subquery(),
            counted("posts"),
            counted("users", since),
        )
    ).one()
    chart = posts_per_day(now)
    return DashboardStats(
        users=users,
        admins=admin_count,
        inactive_users=inactive_count,
        posts=posts,
        new_users=new_users,
        new_posts=sum(count for _, count in chart[-RECENT_DAYS:]),  # the same days, already read for the chart
        posts_per_day=chart,
        recent_since=since,
    )


def posts_per_day(now: datetime | None = None, days: int = CHART_DAYS) -> list[tuple[date, int]]:
    """Posts per UTC day for the last `days` days (today included), from `daily_counts`."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    rows = db.session.execute(
        select(DailyCount.day, DailyCount.count).where(DailyCount.subject == "posts", DailyCount.day >= first)
    ).all()
    counts = dict(rows)
    return [(first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(days)]


def count_posts_by(author_id: int) -> int:
    stmt = select(func.count()).select_from(Post).where(Post.author_id == author_id)
    return db.session.scalar(stmt) or 0
