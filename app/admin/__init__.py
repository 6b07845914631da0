"""Server-rendered admin pages under `/admin`, built on the same services as the API."""

from __future__ import annotations

from flask import Flask

from app.admin import errorpages, filters, headers, links, views  # noqa: F401  (each registers on the blueprint)
from app.admin.blueprint import bp


def init_app(app: Flask) -> None:
    """Register the pages, their HTML error pages and their response headers."""
    app.register_blueprint(bp)
    app.extensions["html_error_renderer"] = errorpages.render_error
