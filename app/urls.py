"""The service's own address, the start of every absolute link it makes.

`PUBLIC_BASE_URL` when set (production requires it), so a forged Host never reaches a
link. Unset (development), the address the request came to: `PORT=18601 make run`,
`flask run` or gunicorn on any port hands out links to itself, not to port 8000.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import current_app, has_request_context, request


def public_base_url() -> str:
    """Scheme, host, port and path prefix, without a trailing slash; `LOCAL_BASE_URL`
    outside a request when `PUBLIC_BASE_URL` is unset."""
    configured = current_app.config.get("PUBLIC_BASE_URL")
    if configured:
        return configured
    if has_request_context():
        return f"{request.scheme}://{request.host}{quote(request.root_path.rstrip('/'), safe=PATH_SAFE)}"
    return current_app.config["LOCAL_BASE_URL"]


PATH_SAFE = "!$&'()*+,/:;=@%"
