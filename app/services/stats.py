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
    new_users: int
    new_posts: int
    posts_per_day: list[tuple[date, int]]  # oldest first, one entry per day, zeros included


def dashboard(now: datetime | None = None) -> DashboardStats:
    """Two statements whose cost does not grow with the tables.

    Totals and whole days come from `daily_counts` (kept by triggers); only the
    first, partial day of the last seven is counted from rows, through the
    `created_at` indexes; admins and inactive users through their partial indexes.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    recent = now - timedelta(days=RECENT_DAYS)
    first_whole_day = recent.date() + timedelta(days=1)
    first_whole_day_start = datetime(first_whole_day.year, first_whole_day.month, first_whole_day.day, tzinfo=UTC)

    def counted(subject: str, since: date | None = None) -> Any:
        stmt = select(func.coalesce(func.sum(DailyCount.count), 0)).where(DailyCount.subject == subject)
        if since is not None:
            stmt = stmt.where(DailyCount.day >= since)
        return stmt.scalar_subquery()

    def created_since(model: type[User] | type[Post], subject: str) -> Any:
        partial_day = select(func.count()).select_from(model).where(
            model.created_at >= recent, model.created_at < first_whole_day_start
        ).scalar_subquery()
        return partial_day + counted(subject, first_whole_day)

    admins = select(func.count()).select_from(User).where(User.role == literal_column("'admin'"))
    inactive = select(func.count()).select_from(User).where(not_(User.is_active))
    users, admin_count, inactive_count, posts, new_users, new_posts = db.session.execute(
        select(
            counted("users"),
            admins.scalar_subquery(),
            inactive.scalar_subquery(),
            counted("posts"),
            created_since(User, "users"),
            created_since(Post, "posts"),
        )
    ).one()
    return DashboardStats(
        users=users,
        admins=admin_count,
        inactive_users=inactive_count,
        posts=posts,
        new_users=new_users,
        new_posts=new_posts,
        posts_per_day=posts_per_day(now),
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
