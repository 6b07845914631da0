"""Response headers for every admin page; the error pages (`errorpages.render_error`,
also used for unknown `/admin` paths) apply them too.

No script runs on these pages at all, so the CSP allows none; styles and
images come only from this origin.
"""

from __future__ import annotations

from flask import Response, request

from app.admin.blueprint import bp

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


def apply_admin_headers(response: Response) -> Response:
    for name, value in ADMIN_HEADERS.items():
        response.headers[name] = value
    if request.endpoint != "admin.static":
        response.headers["Cache-Control"] = "no-store"  # no admin data in shared or back-button caches
        response.vary.add("Cookie")
    return response


bp.after_request(apply_admin_headers)
