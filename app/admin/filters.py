"""Template filters for the admin pages."""

from __future__ import annotations

from datetime import UTC, datetime

from app.admin import bp


@bp.app_template_filter("admin_datetime")
def admin_datetime(value: datetime | None) -> str:
    """Timestamps in UTC, minutes precision: what an operator compares at a glance."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
