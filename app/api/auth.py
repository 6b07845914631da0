"""Sign in, token rotation and sign out."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask_jwt_extended import current_user, get_jwt

from app.api import BEARER, PUBLIC, RATE_LIMIT_HEADERS, Blueprint
from app.extensions import limiter
from app.identity import auth_required, takes_refresh_token
from app.ratelimit import account_mail_limit, client_ip, login_limit, target_email_key
from app.schemas import (
    AcceptedSchema,
    LoginResultSchema,
    LoginSchema,
    LogoutSchema,
    PasswordResetConfirmSchema,
    PasswordResetRequestSchema,
    RefreshSchema,
    TokenSchema,
    VerifyEmailSchema,
)
from app.services import accounts, throttle, tokens, users
from app.services.throttle import Client

F = TypeVar("F", bound=Callable[..., Any])
blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Tokens and sessions")
BEARER_OR_BODY = [*BEARER, {}]  # refresh: the bearer token, or `refresh_token` in the body
ACCEPTED_RESET = {"status": "accepted",
                  "detail": "If an active account has this email, a link to reset its password is on its way."}
ACCEPTED_VERIFY = {"status": "accepted",
                   "detail": "Unless the address is verified already, a new verification link is on its way."}


@blp.route("/login", methods=["POST"])
@limiter.limit(login_limit, key_func=client_ip, scope="login-ip")
@blp.arguments(LoginSchema)
@blp.response(200, LoginResultSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 413, 415, 429,
              d401="Invalid email or password, or a deactivated account: one answer for every case, "
                   "so that it never tells which emails have an account or which accounts are deactivated.",
              d429="Too many requests from this address, or too many failed passwords for this account "
                   "(from this address, or from anywhere without a `device_token`); wait `Retry-After` seconds.")
@blp.doc(operationId="login", security=PUBLIC)
def login(credentials):
    """Exchange email and password for an access and a refresh token: a new session.

    Keep the `device_token` and send it with later logins to this account: failed guesses
    by others (which lock the account for clients without one) do not lock that device out.

    A deactivated account cannot sign in, and is told so in the same words as a wrong password
    (401 "Invalid email or password."), even with its right password: a different answer would
    confirm to anyone holding a guessed or leaked password that the account exists and what became
    of it. An admin who deactivated an account tells its owner by other means."""
    client = Client(ip=client_ip(), device_token=credentials.get("device_token"))
    user = users.authenticate(credentials["email"], credentials["password"], client)
    return {**tokens.start_session(user), "device_token": throttle.issue_device_token(user)}


@blp.route("/refresh", methods=["POST"])
@takes_refresh_token
@limiter.limit(login_limit, key_func=client_ip, scope="refresh-ip")
@limiter.limit(login_limit, key_func=target_email_key, scope="refresh-user")
@blp.arguments(RefreshSchema, required=False)
@auth_required(refresh=True)
@blp.response(200, TokenSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 413, 415, 429,
              d401="Missing, invalid or expired refresh token, an access token instead of it, or its session "
                   "has ended. A refresh token that was already spent ends its whole session.")
@blp.doc(operationId="refreshTokens", security=BEARER_OR_BODY)
def refresh(_body):
    """Spend the session's refresh token for a new pair.

    Send the `refresh_token` from login (or from the last refresh) either as the bearer
    token, `Authorization: Bearer <refresh_token>`, or in the JSON body as
    `{"refresh_token": "<refresh_token>"}`, the way logout takes one; when both are sent the
    header's is spent. Each refresh token can be spent once. Presenting one that was already
    spent ends the session: every token of it, the thief's and the owner's, stops working."""
    return tokens.rotate(get_jwt(), current_user)


def _caller_logged_out_first(view: F) -> F:
    """End the caller's session before the body is read: no body keeps it alive."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tokens.logout(get_jwt(), current_user)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@blp.route("/logout", methods=["POST"])
@auth_required()
@_caller_logged_out_first
@blp.arguments(LogoutSchema, required=False)
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 413, 415, 429)
@blp.doc(operationId="logout", security=BEARER)
def logout(body):
    """End the caller's session; a body is optional.

    The caller is named by their access token, `Authorization: Bearer <access_token>`. A
    logout always logs you out: your session ends first, whatever the body holds. A
    `refresh_token` in the body (as refresh takes one) ends that token's session too
    (another device of yours).
    When the body is not valid (a malformed, expired or someone else's `refresh_token`, an
    unknown field, not JSON) the answer is that problem, so that you learn no other session
    was ended; your own session has ended all the same, and its tokens are refused from now on."""
    if "refresh_token" in body:
        tokens.logout_refresh_token(body["refresh_token"], current_user)
    return ""


@blp.route("/logout-all", methods=["POST"])
@auth_required()
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 429)
@blp.doc(security=BEARER, operationId="logoutAll")
def logout_all():
    """End every session of the caller.

    All their tokens and admin page sessions stop working, on every host: each device signs in again."""
    users.end_sessions(current_user, current_user)
    return ""


# ---- password reset and email verification --------------------------------------


@blp.route("/password-reset", methods=["POST"])
@limiter.limit(account_mail_limit, key_func=client_ip, scope="password-reset-ip")
@limiter.limit(account_mail_limit, key_func=target_email_key, scope="password-reset-email")
@blp.arguments(PasswordResetRequestSchema)
@blp.response(202, AcceptedSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 413, 415, 429, 503)
@blp.doc(operationId="requestPasswordReset", security=PUBLIC)
def request_password_reset(body):
    """Mail a password reset link to this email if an active account has it.

    The answer is the same, and takes about as long, whether or not the account exists:
    the message is queued and sent shortly after, whatever the state of the mail server.
    The link (`{PUBLIC_BASE_URL}/reset-password?token=…`) works once, for
    `PASSWORD_RESET_MINUTES`, and not after the password has changed."""
    accounts.request_password_reset(body["email"])
    return ACCEPTED_RESET


@blp.route("/password-reset/confirm", methods=["POST"])
@limiter.shared_limit(account_mail_limit, "password-reset-confirm-ip", key_func=client_ip)
@blp.arguments(PasswordResetConfirmSchema)
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 413, 415, 429, d400="Malformed JSON, or the token is invalid, expired or already used.")
@blp.doc(operationId="confirmPasswordReset", security=PUBLIC)
def confirm_password_reset(body):
    """Set a new password with the token from the reset link.

    The token works once. Every session of the account ends: sign in with the new password."""
    accounts.confirm_password_reset(body["token"], body["password"])
    return ""


@blp.route("/verify-email", methods=["POST"])
@limiter.shared_limit(account_mail_limit, "verify-email-ip", key_func=client_ip)
@blp.arguments(VerifyEmailSchema)
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 413, 415, 429, d400="Malformed JSON, or the token is invalid or expired.")
@blp.doc(operationId="verifyEmail", security=PUBLIC)
def verify_email(body):
    """Confirm the email address with the token from the verification link.

    The link is mailed at registration, after an email change and on
    `POST /api/auth/verify-email/resend`; the account's `email_verified` becomes true."""
    accounts.verify_email(body["token"])
    return ""


@blp.route("/verify-email/resend", methods=["POST"])
@auth_required()
@blp.response(202, AcceptedSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 429, 503)
@blp.doc(security=BEARER, operationId="resendVerification")
def resend_verification():
    """Mail a new verification link to the caller's email.

    Nothing is sent once the email is verified. Resends and email changes share one budget
    per account and per address (`RATELIMIT_ACCOUNT_MAIL`): beyond it, 429 with `Retry-After`."""
    accounts.resend_verification(current_user)
    return ACCEPTED_VERIFY
