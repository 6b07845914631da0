"""Template filters for the admin pages."""

from __future__ import annotations

from datetime import UTC, datetime

from app.admin.blueprint import bp
from app.admin.chart import count_label
from app.admin.excerpt import Excerpt, excerpt
from app.search import SearchQuery


@bp.app_template_filter("admin_datetime")
def admin_datetime(value: datetime | None) -> str:
    """Timestamps in UTC, minutes precision: what an operator compares at a glance."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@bp.app_template_filter("admin_date")
def admin_date(value: datetime | None) -> str:
    """The day in UTC, for lists (the minute is in the cell's title and on the detail page)."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d")


@bp.app_template_filter("search_excerpt")
def search_excerpt(body: str, query: SearchQuery) -> Excerpt:
    """What the search matched in the body, with some context (the template escapes it)."""
    return excerpt(body, query)


@bp.app_template_filter("thousands")
def thousands(value: int) -> str:
    """Counts with thousands separators (`502,020`); ids stay as they are."""
    return count_label(value)
