"""Server-rendered admin pages under `/admin`, built on the same services as the API."""

from __future__ import annotations

from flask import Blueprint, Flask

from app.faces import ADMIN

bp = Blueprint(
    ADMIN,
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def init_app(app: Flask) -> None:
    """Register the pages, their HTML error pages and their response headers."""
    from app.admin import errorpages, filters, headers, views  # noqa: F401  (they register on bp)

    app.register_blueprint(bp)
    app.extensions["html_error_renderer"] = errorpages.render_error
