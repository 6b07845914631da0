"""Users: registration, profiles, and changes by the user themself or an admin."""

from __future__ import annotations

from flask import g, url_for
from flask_jwt_extended import current_user, get_current_user, get_jwt

from app.api import (
    BEARER,
    IDEMPOTENCY_PROBLEMS,
    LINK_HEADER,
    LOCATION_HEADER,
    PUBLIC,
    RATE_LIMIT_HEADERS,
    Blueprint,
    any_of_response,
)
from app.api.conditional import page_etag
from app.api.idempotency import idempotent
from app.api.posts import page_of_posts
from app.auth import admin_required, read_with_token
from app.errors import hint_wrong_methods
from app.extensions import limiter
from app.identity import SESSION_CLAIM, auth_required, reads_user_with_token
from app.models import User
from app.pagination import next_link, page_request
from app.ratelimit import client_ip, register_limit
from app.schemas import (
    NEW_SESSION,
    PASSWORD_RULES,
    PageArgsSchema,
    PostSchema,
    PublicUserSchema,
    SearchArgsSchema,
    SeenUserSchema,
    UserCreateSchema,
    UserSchema,
    UserUpdateSchema,
)
from app.services import accounts, follows, posts, tokens, users
from app.services.throttle import Client

blp = Blueprint("users", __name__, url_prefix="/api/users", description="Users")
# `SeenUserSchema` answers a `User` to the user themself and admins, a `PublicUser` to everyone else.
_USER_OR_PUBLIC = ("User", "PublicUser")


def profile_etag(user: User) -> tuple:
    """What a user's public profile is made of (its `id` and `created_at` never change). Not the
    row's version: a profile's tag must not move with what its readers cannot see (a new
    password, email or role)."""
    return "profile", user.id, user.name, user.followers_count, user.following_count


def shown_etag(user: User) -> tuple:
    """What the caller sees of `user` is made of: for the whole account (the user themself,
    admins) the row's version and the counts (kept by triggers, outside the version)."""
    if users.can_see_account(current_user, user):
        return "account", user.id, user.version, user.followers_count, user.following_count
    return profile_etag(user)


def user_etag(user: User) -> tuple:
    """What the caller's read of `user` is made of: what they see of them, and whether they
    follow them (read here if it was not)."""
    return *shown_etag(user), follows.with_follow_state(current_user, user).followed_by_me


def check_user_etag(user: User) -> None:
    """The `If-Match` precondition of a change to `user` (the services call it)."""
    blp.check_etag(user_etag(user))


def _client_address() -> str:
    return f"ip:{client_ip()}"


@blp.route("", methods=["POST"])
@limiter.limit(register_limit, key_func=client_ip, scope="register")
@blp.arguments(UserCreateSchema)
@idempotent(_client_address)
@blp.response(201, UserSchema, headers={**LOCATION_HEADER, **RATE_LIMIT_HEADERS})
@blp.problems(400, 409, 413, 415, 422, 429, 503, **IDEMPOTENCY_PROBLEMS,
              d409="An account with this email already exists, or a request with this `Idempotency-Key` "
                   "is still running (then with `Retry-After`).")
@blp.doc(operationId="register", security=PUBLIC, description=f"`password`: {PASSWORD_RULES}")
def register(fields):
    """Create an account and mail a verification link to its email. Anyone may register;
    nobody may choose their role. Send an `Idempotency-Key` to make retries safe."""
    user = accounts.register(**fields)
    return user, {"Location": url_for("users.get_user", user_id=user.id)}


@blp.route("", methods=["GET"])
@auth_required()
@blp.etag
@blp.arguments(PageArgsSchema, location="query", as_kwargs=False)
@blp.response(200, SeenUserSchema(many=True))
@blp.doc(responses={200: any_of_response(
    "Users; the caller (and, for admins, everyone) as a `User`, others as a `PublicUser`.",
    *_USER_OR_PUBLIC, many=True, headers=LINK_HEADER)})
@blp.problems(401, 429)
@blp.doc(operationId="listUsers", security=BEARER)
def list_users(args):
    """Users by id.

    Keyset-paginated: follow `Link: rel="next"` for the next page. Only the user themself and
    admins see `email`, `age`, `role`, `is_active` and `updated_at`."""
    page = users.list_users(page_request(args, users.SORT_KEY))
    blp.set_etag(page_etag([shown_etag(user) for user in page.items], page.next_key))
    return page.items, next_link(page.next_key)


_CHANGE_YOURSELF = ("To change your account, send PATCH /api/users/<id> with your own id "
                    "(the `id` that GET /api/users/me answers).")


@blp.route("/me")
@hint_wrong_methods(PATCH=_CHANGE_YOURSELF, PUT=_CHANGE_YOURSELF, POST=_CHANGE_YOURSELF,
                    DELETE="Accounts are deleted by an admin, with DELETE /api/users/<id>; "
                           "nobody deletes their own.")
@auth_required()
@blp.etag
@blp.response(200, UserSchema)
@blp.problems(401, 429)
@blp.doc(operationId="getMe", security=BEARER)
def me():
    """The caller's own account.

    The whole account (`User`: `email`, `role`, `email_verified`...) of the user the bearer
    token belongs to."""
    user = get_current_user()  # the user itself: through the `current_user` proxy, every field read costs
    blp.set_etag(user_etag(user))
    return user


@blp.route("/<int:user_id>", methods=["GET"])
@reads_user_with_token
@auth_required()
@blp.etag
@blp.response(200, SeenUserSchema)
@blp.doc(responses={200: any_of_response(
    "A `User` for the user themself and admins, a `PublicUser` for everyone else.", *_USER_OR_PUBLIC)})
@blp.problems(401, 404, 429)
@blp.doc(operationId="getUser", security=BEARER)
def get_user(user_id: int):
    """One user.

    The whole account (`User`) for the user themself and admins; `id`, `name`, `created_at`
    and the follow counts (`PublicUser`) for everyone else; `followed_by_me` on another user."""
    user = follows.user_seen_by(current_user, user_id, read_with_token())
    blp.set_etag(user_etag(user))
    return user


def _current_user_etag(user_id: int) -> tuple:
    return user_etag(follows.user_seen_by(current_user, user_id))


@blp.route("/<int:user_id>", methods=["PATCH"])
@auth_required()
@blp.etag
@blp.arguments(UserUpdateSchema)
@blp.response(200, UserSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 403, 404, 409, 413, 415, 429, 503)
@blp.doc(operationId="updateUser", security=BEARER,
         description=f"A new `password` needs `current_password` unless an admin sets it; {PASSWORD_RULES}")
def update_user(changes, user_id: int):
    """Change a user: themself or an admin; `role` and `is_active` by an admin only. Send
    `If-Match` to change only the version you read.

    A new `password` or `email` needs `current_password`, also from admins changing their own;
    an admin changing another user's needs none. A new email is unverified until its owner
    follows the link mailed to it (queued with the change, sent shortly after).
    A new password, a new role or a deactivation ends every session of the user. When callers
    change their own password the answer carries `tokens`, the first pair of their new session."""
    client = Client(ip=client_ip(), session=(current_user.id, get_jwt()[SESSION_CLAIM]))  # signed in: a device
    with blp.etag_on_failure(lambda: _current_user_etag(user_id)):
        user = users.update_user(current_user, users.get_user(user_id), changes, client, check_user_etag)
    blp.set_etag(user_etag(user))  # the user as a later read shows them, without the tokens
    if "password" in changes and user.id == current_user.id:
        setattr(g, NEW_SESSION, tokens.start_session(user))  # the answer's `tokens` (UserSchema)
    return user


@blp.route("/<int:user_id>", methods=["DELETE"])
@admin_required
@blp.etag
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 403, 404, 409, 429, d409="Admins cannot delete themselves or the last active admin.")
@blp.doc(operationId="deleteUser", security=BEARER)
def delete_user(user_id: int):
    """Delete a user and their posts (admins only).

    Send `If-Match` to delete only the version you read. Admins cannot delete themselves,
    and the last active admin stays."""
    with blp.etag_on_failure(lambda: _current_user_etag(user_id)):
        users.delete_user(current_user, users.get_user(user_id), check_user_etag)
    return ""


@blp.route("/<int:user_id>/posts")
@blp.etag
@blp.arguments(SearchArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PostSchema(many=True), headers=LINK_HEADER)
@blp.problems(404, 429, 503)
@blp.doc(operationId="listUserPosts", security=PUBLIC)
def list_user_posts(args, user_id: int):
    """One author's posts, newest first.

    Keyset-paginated: follow `Link: rel="next"` for the next page. Search them with `q`,
    as on `GET /api/posts`."""
    users.ensure_exists(user_id)
    return page_of_posts(blp, page_request(args, posts.SORT_KEY), author_id=user_id, search=args.get("q"))


@blp.route("/<int:user_id>/follow", methods=["PUT"])
@auth_required()
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 403, 404, 409, 422, 429, d409="The user is deactivated: reading them works, following does not.",
              d403="`REQUIRE_VERIFIED_EMAIL` is on and the caller's email is not verified.",
              d422="You cannot follow yourself.")
@blp.doc(operationId="followUser", security=BEARER)
def follow_user(user_id: int):
    """Follow a user.

    Following again changes nothing. Counts against the write limit."""
    follows.follow(current_user, user_id)
    return ""


@blp.route("/<int:user_id>/follow", methods=["DELETE"])
@auth_required()
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 404, 429)
@blp.doc(operationId="unfollowUser", security=BEARER)
def unfollow_user(user_id: int):
    """Stop following a user.

    Also 204 when not following them. Counts against the write limit."""
    follows.unfollow(current_user, user_id)
    return ""


@blp.route("/<int:user_id>/followers")
@auth_required()
@blp.etag
@blp.arguments(PageArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PublicUserSchema(many=True), headers=LINK_HEADER)
@blp.problems(401, 404, 429)
@blp.doc(operationId="listFollowers", security=BEARER)
def list_followers(args, user_id: int):
    """Who follows the user.

    Newest follow first, keyset-paginated: follow `Link: rel="next"` for the next page."""
    page = follows.list_followers(user_id, page_request(args, follows.SORT_KEY))
    blp.set_etag(page_etag([profile_etag(user) for user in page.items], page.next_key))
    return page.items, next_link(page.next_key)


@blp.route("/<int:user_id>/following")
@auth_required()
@blp.etag
@blp.arguments(PageArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PublicUserSchema(many=True), headers=LINK_HEADER)
@blp.problems(401, 404, 429)
@blp.doc(operationId="listFollowing", security=BEARER)
def list_following(args, user_id: int):
    """Whom the user follows.

    Newest follow first, keyset-paginated: follow `Link: rel="next"` for the next page."""
    page = follows.list_following(user_id, page_request(args, follows.SORT_KEY))
    blp.set_etag(page_etag([profile_etag(user) for user in page.items], page.next_key))
    return page.items, next_link(page.next_key)
