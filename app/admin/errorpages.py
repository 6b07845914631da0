"""Errors under `/admin` as HTML pages in the admin's look, never problem JSON.

`app.errors` routes every error of the admin blueprint (`app.faces.is_admin`) to `render_error`. A CSRF
failure is handled here to say what went wrong in words an operator follows.
"""

from __future__ import annotations

import logging

from flask import Response, make_response, render_template
from flask_wtf.csrf import CSRFError
from markupsafe import escape

from app.admin.blueprint import bp
from app.admin.headers import apply_admin_headers

log = logging.getLogger(__name__)

CSRF_DETAIL = (
    "The form's security token was missing, invalid or expired, so nothing was changed. "
    "Go back, reload the page and try again."
)


def render_error(status: int, title: str, detail: str) -> Response:
    """The error page; falls back to bare HTML if even the template fails."""
    try:
        body = render_template("admin/error.html", status=status, title=title, detail=detail)
    except Exception:  # the page for a failure must not fail itself
        log.exception("admin error page failed to render")
        body = (
            f"<!doctype html><title>{status} {escape(title)}</title>"
            f"<h1>{escape(title)}</h1><p>{escape(detail)}</p>"
        )
    response = make_response(body, status)
    response.mimetype = "text/html"
    return apply_admin_headers(response)


@bp.errorhandler(CSRFError)
def csrf_failed(_error: CSRFError) -> Response:
    return render_error(400, "Bad Request", CSRF_DETAIL)
