"""Sign in, token rotation and sign out."""

from __future__ import annotations

from flask_jwt_extended import current_user, get_jwt, jwt_required

from app.api import BEARER, RATE_LIMIT_HEADERS, Blueprint
from app.extensions import limiter
from app.ratelimit import account_mail_limit, client_ip, login_limit, target_email_key, write_limit_key
from app.schemas import (
    AcceptedSchema,
    LoginResultSchema,
    LoginSchema,
    LogoutSchema,
    PasswordResetConfirmSchema,
    PasswordResetRequestSchema,
    TokenSchema,
    VerifyEmailSchema,
)
from app.services import accounts, throttle, tokens, users
from app.services.throttle import Client

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Tokens and sessions")
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
@blp.doc(operationId="login")
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
@limiter.limit(login_limit, key_func=client_ip, scope="refresh-ip")
@limiter.limit(login_limit, key_func=target_email_key, scope="refresh-user")
@jwt_required(refresh=True)
@blp.response(200, TokenSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 429, d401="Missing, invalid or expired refresh token, or its session has ended. "
                             "A refresh token that was already spent ends its whole session.")
@blp.doc(operationId="refreshTokens", security=BEARER)
def refresh():
    """Spend the session's refresh token (sent as the bearer token) for a new pair.

    Each refresh token can be spent once. Presenting one that was already spent
    ends the session: every token of it, the thief's and the owner's, stops working."""
    return tokens.rotate(get_jwt(), current_user)


@blp.route("/logout", methods=["POST"])
@jwt_required()
@blp.arguments(LogoutSchema, required=False)
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 413, 415, 429)
@blp.doc(operationId="logout", security=BEARER)
def logout(body):
    """End the caller's session (its access and refresh tokens) on every host; a body is optional.
    A `refresh_token` in the body ends that token's session too."""
    tokens.logout(get_jwt(), current_user, body.get("refresh_token"))
    return ""


@blp.route("/logout-all", methods=["POST"])
@jwt_required()
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 429)
@blp.doc(security=BEARER, operationId="logoutAll")
def logout_all():
    """End every session of the caller: all their tokens and admin page sessions, on every host."""
    users.end_sessions(current_user, current_user)
    return ""


# ---- password reset and email verification --------------------------------------


@blp.route("/password-reset", methods=["POST"])
@limiter.limit(account_mail_limit, key_func=client_ip, scope="password-reset-ip")
@limiter.limit(account_mail_limit, key_func=target_email_key, scope="password-reset-email")
@blp.arguments(PasswordResetRequestSchema)
@blp.response(202, AcceptedSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 413, 415, 429, 503, d503="The mail server is unavailable; nothing was sent.")
@blp.doc(operationId="requestPasswordReset")
def request_password_reset(body):
    """Mail a password reset link to this email if an active account has it.

    The answer is the same, and takes about as long, whether or not the account exists.
    The link (`{PUBLIC_BASE_URL}/reset-password?token=…`) works once, for
    `PASSWORD_RESET_MINUTES`, and not after the password has changed."""
    accounts.request_password_reset(body["email"])
    return ACCEPTED_RESET


@blp.route("/password-reset/confirm", methods=["POST"])
@limiter.limit(account_mail_limit, key_func=client_ip, scope="password-reset-confirm-ip")
@blp.arguments(PasswordResetConfirmSchema)
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 413, 415, 429, d400="Malformed JSON, or the token is invalid, expired or already used.")
@blp.doc(operationId="confirmPasswordReset")
def confirm_password_reset(body):
    """Set a new password with the token from the reset link. Every session of the account ends."""
    accounts.confirm_password_reset(body["token"], body["password"])
    return ""


@blp.route("/verify-email", methods=["POST"])
@limiter.limit(account_mail_limit, key_func=client_ip, scope="verify-email-ip")
@blp.arguments(VerifyEmailSchema)
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 413, 415, 429, d400="Malformed JSON, or the token is invalid or expired.")
@blp.doc(operationId="verifyEmail")
def verify_email(body):
    """Confirm the email address with the token from the verification link."""
    accounts.verify_email(body["token"])
    return ""


@blp.route("/verify-email/resend", methods=["POST"])
@limiter.limit(account_mail_limit, key_func=write_limit_key, scope="verify-email-resend")
@jwt_required()
@blp.response(202, AcceptedSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 429, 503, d503="The mail server is unavailable; nothing was sent.")
@blp.doc(security=BEARER, operationId="resendVerification")
def resend_verification():
    """Mail a new verification link to the caller's email (nothing is sent once it is verified)."""
    accounts.resend_verification(current_user)
    return ACCEPTED_VERIFY
