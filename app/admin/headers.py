"""Response headers for every admin page, error pages and unknown `/admin` paths included.

No script runs on these pages at all, so the CSP allows none; styles and
images come only from this origin.
"""

from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
ADMIN_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def is_admin_path(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


def register(app: Flask) -> None:
    @app.after_request
    def admin_headers(response: Response) -> Response:
        if not is_admin_path(request.path):
            return response
        for name, value in ADMIN_HEADERS.items():
            response.headers[name] = value
        if not request.path.startswith("/admin/static/"):
            response.headers["Cache-Control"] = "no-store"  # no admin data in shared or back-button caches
            response.vary.add("Cookie")
        return response
