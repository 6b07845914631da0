"""`GET /`: where a visitor finds the API (a small JSON index of its entry points)."""

from __future__ import annotations

from flask import current_app, url_for

from app.api import PUBLIC, UNTRUSTED_HOST, Blueprint
from app.schemas import IndexSchema

blp = Blueprint("index", __name__, url_prefix="/", description="Where to start")


@blp.route("")
@blp.response(200, IndexSchema)
@blp.problems(400, **UNTRUSTED_HOST)
@blp.doc(operationId="getIndex", security=PUBLIC)
def index():
    """The API's entry points: documentation, the OpenAPI document, probes and collections.

    Paths, not absolute URLs: they hold behind any proxy and never echo a Host header.
    """
    config = current_app.config
    return {
        "name": config["API_TITLE"],
        "version": config["API_VERSION"],
        "links": {
            "docs": config["OPENAPI_SWAGGER_UI_PATH"],
            "redoc": config["OPENAPI_REDOC_PATH"],
            "openapi": "/" + config["OPENAPI_JSON_PATH"],
            "health": url_for("health.health"),
            "ready": url_for("health.ready"),
            "register": url_for("users.register"),
            "login": url_for("auth.login"),
            "users": url_for("users.list_users"),
            "me": url_for("users.me"),
            "posts": url_for("posts.list_posts"),
            "feed": url_for("feed.get_feed"),
            "admin": "/admin",
        },
    }
