"""Sign in, token rotation and sign out."""

from __future__ import annotations

from flask_jwt_extended import current_user, get_jwt, jwt_required

from app.api import RATE_LIMIT_HEADERS, Blueprint
from app.extensions import limiter
from app.ratelimit import client_ip, login_limit, target_email_key
from app.schemas import LoginSchema, LogoutSchema, TokenSchema
from app.services import tokens, users

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Tokens")


@blp.route("/login", methods=["POST"])
@limiter.limit(login_limit, key_func=client_ip, scope="login-ip")
@limiter.limit(login_limit, key_func=target_email_key, scope="login-email")
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 413, 415, 429, d401="Invalid email or password.")
@blp.doc(operationId="login")
def login(credentials):
    """Exchange email and password for an access and a refresh token."""
    user = users.authenticate(credentials["email"], credentials["password"])
    return tokens.issue_tokens(user)


@blp.route("/refresh", methods=["POST"])
@limiter.limit(login_limit, key_func=client_ip, scope="refresh-ip")
@limiter.limit(login_limit, key_func=target_email_key, scope="refresh-user")
@jwt_required(refresh=True)
@blp.response(200, TokenSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 429)
@blp.doc(operationId="refreshTokens", security=[{"bearerAuth": []}])
def refresh():
    """Spend a refresh token (sent as the bearer token) for a new pair; it is revoked."""
    return tokens.rotate(get_jwt(), current_user)


@blp.route("/logout", methods=["POST"])
@jwt_required()
@blp.arguments(LogoutSchema, required=False)
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 413, 415, 429)
@blp.doc(operationId="logout", security=[{"bearerAuth": []}])
def logout(body):
    """Revoke the access token, and the refresh token if given, on every host."""
    revoked = [get_jwt()]
    if "refresh_token" in body:
        revoked.append(tokens.decode_refresh_token(body["refresh_token"], current_user))
    tokens.revoke(*revoked)
    return ""
