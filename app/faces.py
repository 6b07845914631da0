"""Which face answers a request, the API or the admin pages: the blueprint decides.

A request a rule matched belongs to that rule's blueprint. A path no rule matched
(its 404 or 405) belongs to the blueprint whose URL prefix holds it, so that
`/admin/nowhere` gets the admin's page and `/administrator` does not.
"""

from __future__ import annotations

from flask import current_app, request

ADMIN = "admin"


def serving_blueprint() -> str | None:
    if request.blueprint is not None:
        return request.blueprint
    path = request.path
    for name, blueprint in current_app.blueprints.items():
        prefix = (blueprint.url_prefix or "").rstrip("/")
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            return name
    return None


def is_admin() -> bool:
    return serving_blueprint() == ADMIN


def is_api_resource() -> bool:
    """A request to the resources under `/api` (not the health probes, the index or the docs):
    what the read and write limits count."""
    name = serving_blueprint()
    prefix = current_app.blueprints[name].url_prefix if name else None
    return bool(prefix) and prefix.startswith("/api")
