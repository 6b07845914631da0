"""Users: registration, profiles, and changes by the user themself or an admin."""

from __future__ import annotations

from flask import url_for
from flask_jwt_extended import current_user, jwt_required

from app.api import (
    LINK_HEADER,
    LOCATION_HEADER,
    RATE_LIMIT_HEADERS,
    Blueprint,
    any_of_response,
    json_response,
    search_limited,
)
from app.api.posts import dump_posts
from app.auth import admin_required, jwt_required_reading_user, read_with_token
from app.extensions import limiter
from app.models import User
from app.pagination import next_link, page_request
from app.ratelimit import client_ip, register_limit
from app.schemas import (
    PASSWORD_RULES,
    PageArgsSchema,
    PostSchema,
    PublicUserSchema,
    SearchArgsSchema,
    UserCreateSchema,
    UserSchema,
    UserUpdateSchema,
)
from app.services import accounts, posts, tokens, users
from app.services.throttle import Client

blp = Blueprint("users", __name__, url_prefix="/api/users", description="Users")
BEARER = [{"bearerAuth": []}]
_account, _public = UserSchema(), PublicUserSchema()
# Others see a `PublicUser`; the user themself and admins a `User`.
_USER_OR_PUBLIC = ("User", "PublicUser")


def dump_user(user: User, viewer: User | None) -> dict:
    """The whole account for the user themself and admins, the public profile for everyone else."""
    return (_account if users.can_see_account(viewer, user) else _public).dump(user)


@blp.route("", methods=["POST"])
@limiter.limit(register_limit, key_func=client_ip, scope="register")
@blp.arguments(UserCreateSchema)
@blp.response(201, UserSchema, headers={**LOCATION_HEADER, **RATE_LIMIT_HEADERS})
@blp.problems(400, 409, 413, 415, 429, 503, d409="An account with this email already exists.",
              d503="The mail server did not take the verification email; no account was created.")
@blp.doc(operationId="register", description=f"`password`: {PASSWORD_RULES}")
def register(fields):
    """Create an account and mail a verification link to its email. Anyone may register;
    nobody may choose their role."""
    user = accounts.register(**fields)
    location = url_for("users.get_user", user_id=user.id)
    return json_response(dump_user(user, user), 201, {"Location": location})


@blp.route("", methods=["GET"])
@jwt_required()
@blp.arguments(PageArgsSchema, location="query", as_kwargs=False)
@blp.doc(responses={"200": any_of_response(
    "Users; the caller (and, for admins, everyone) as a `User`, others as a `PublicUser`.",
    *_USER_OR_PUBLIC, many=True, headers=LINK_HEADER)})
@blp.problems(401, 429)
@blp.doc(operationId="listUsers", security=BEARER)
def list_users(args):
    """Users by id, keyset-paginated (`Link: rel="next"`). Only the user themself and admins
    see `email`, `age`, `role`, `is_active` and `updated_at`."""
    page = users.list_users(page_request(args, users.SORT_KEY))
    return json_response([dump_user(u, current_user) for u in page.items],
                         headers=next_link(page.next_key))


@blp.route("/me")
@jwt_required()
@blp.response(200, UserSchema)
@blp.problems(401, 429)
@blp.doc(operationId="getMe", security=BEARER)
def me():
    """The caller's own account."""
    return json_response(dump_user(current_user, current_user))


@blp.route("/<int:user_id>", methods=["GET"])
@jwt_required_reading_user()
@blp.doc(responses={"200": any_of_response(
    "A `User` for the user themself and admins, a `PublicUser` for everyone else.", *_USER_OR_PUBLIC)})
@blp.problems(401, 404, 429)
@blp.doc(operationId="getUser", security=BEARER)
def get_user(user_id: int):
    """One user: the whole account for the user themself and admins, `id`, `name` and
    `created_at` for everyone else."""
    return json_response(dump_user(users.get_user(user_id, read=read_with_token()), current_user))


@blp.route("/<int:user_id>", methods=["PATCH"])
@jwt_required()
@blp.arguments(UserUpdateSchema)
@blp.response(200, UserSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 403, 404, 409, 413, 415, 429, 503)
@blp.doc(operationId="updateUser", security=BEARER,
         description=f"A new `password` needs `current_password` unless an admin sets it; {PASSWORD_RULES}")
def update_user(changes, user_id: int):
    """Change a user: themself or an admin; `role` and `is_active` by an admin only.

    A new `password` or `email` needs `current_password`, also from admins changing their own;
    an admin changing another user's needs none. A new email is unverified until its owner
    follows the link mailed to it (503, and nothing changed, if the mail server is down).
    A new password, a new role or a deactivation ends every session of the user. When callers
    change their own password the answer carries `tokens`, the first pair of their new session."""
    user = users.update_user(current_user, users.get_user(user_id), changes, Client(ip=client_ip()))
    data = dump_user(user, current_user)
    if "password" in changes and user.id == current_user.id:
        data["tokens"] = tokens.start_session(user)
    return json_response(data)


@blp.route("/<int:user_id>", methods=["DELETE"])
@admin_required
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 403, 404, 409, 429, d409="Admins cannot delete themselves or the last active admin.")
@blp.doc(operationId="deleteUser", security=BEARER)
def delete_user(user_id: int):
    """Delete a user and their posts (admins only)."""
    users.delete_user(current_user, users.get_user(user_id))
    return ""


@blp.route("/<int:user_id>/posts")
@search_limited
@blp.arguments(SearchArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PostSchema(many=True), headers=LINK_HEADER)
@blp.problems(404, 429, 503)
@blp.doc(operationId="listUserPosts")
def list_user_posts(args, user_id: int):
    """One author's posts, newest first; search them with `q`."""
    users.ensure_exists(user_id)
    page = posts.list_posts(page_request(args, posts.SORT_KEY), author_id=user_id, search=args.get("q"))
    return dump_posts(page)
