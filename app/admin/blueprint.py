"""The admin pages' blueprint, which the page modules register their views and hooks on."""

from __future__ import annotations

from flask import Blueprint

from app.faces import ADMIN

bp = Blueprint(
    ADMIN,
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
