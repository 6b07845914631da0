"""The two pages the mailed links open: `/verify-email` and `/reset-password`.

A mail link must work in a plain browser, so these are small server-rendered forms
that call the same services as the API. Opening a link changes nothing (mail
scanners fetch links); a button press (POST) does. The forms carry no CSRF token:
their authority is the signed token in the form itself, not a cookie, so a forged
cross-site request has nothing to borrow.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, render_template, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from app.errors import DomainError
from app.extensions import csrf, limiter
from app.ratelimit import account_mail_limit, client_ip
from app.schemas import PasswordResetConfirmSchema
from app.services import accounts, links

bp = Blueprint("account", __name__, template_folder="templates")

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Cache-Control": "no-store",
}


def _page(template: str, status: int = 200, **context: object) -> Response:
    response = Response(render_template(f"account/{template}", **context), status=status, mimetype="text/html")
    response.headers.update(PAGE_HEADERS)
    return response


# The same per-address budgets as the API's routes for the same actions (the scopes are shared).
@bp.route(links.VERIFY_PATH, methods=["GET", "POST"])
@limiter.shared_limit(account_mail_limit, "verify-email-ip", key_func=client_ip, methods=["POST"])
def verify_email() -> Response:
    token = request.values.get("token", "")
    if request.method == "GET":
        return _page("verify_email.html", token=token)
    try:
        accounts.verify_email(token)
    except DomainError as error:
        return _page("done.html", 400, title="Link not valid", message=error.detail)
    return _page("done.html", title="Email confirmed", message="Thank you: your email address is confirmed.")


@bp.route(links.RESET_PATH, methods=["GET", "POST"])
@limiter.shared_limit(account_mail_limit, "password-reset-confirm-ip", key_func=client_ip, methods=["POST"])
def reset_password() -> Response:
    token = request.values.get("token", "")
    if request.method == "GET":
        try:
            accounts.check_reset_token(token)
        except DomainError as error:
            return _page("done.html", 400, title="Link not valid", message=error.detail)
        return _page("reset_password.html", token=token, errors=[])
    password = request.form.get("password", "")
    if password != request.form.get("confirm", ""):
        return _page("reset_password.html", 422, token=token, errors=["The two passwords differ."])
    try:
        data = PasswordResetConfirmSchema().load({"token": token, "password": password})
        accounts.confirm_password_reset(data["token"], data["password"])
    except ValidationError as error:
        messages = [m for field in error.messages.values() for m in (field if isinstance(field, list) else [field])]
        return _page("reset_password.html", 422, token=token, errors=messages)
    except DomainError as error:
        return _page("done.html", 400, title="Link not valid", message=error.detail)
    return _page("done.html", title="Password changed",
                 message="Your new password is set. You have been signed out everywhere; sign in with it.")


@bp.errorhandler(429)
def too_many(error: HTTPException) -> Response:
    return _page("done.html", 429, title="Too many attempts",
                 message="Too many attempts from your address. Wait a while, then open the link again.")


def init_app(app: Flask) -> None:
    csrf.exempt(bp)
    app.register_blueprint(bp)
