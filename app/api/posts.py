"""Posts: public reading, writing by any signed-in user, changes by author or admin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import request, url_for
from flask_jwt_extended import current_user

from app.api import (
    BEARER,
    IDEMPOTENCY_PROBLEMS,
    LINK_HEADER,
    LOCATION_HEADER,
    PUBLIC,
    RATE_LIMIT_HEADERS,
    Blueprint,
)
from app.api.conditional import page_etag
from app.api.idempotency import idempotent
from app.identity import auth_required
from app.models import Post
from app.pagination import PageRequest, next_link, page_request
from app.schemas import PostCreateSchema, PostListArgsSchema, PostSchema, PostUpdateSchema
from app.search import SearchQuery
from app.services import posts
from app.services.posts import PostStamp, PostView

blp = Blueprint("posts", __name__, url_prefix="/api/posts", description="Posts")


def post_etag(post: Post | PostView) -> PostStamp:
    """What a post's ETag is made of (`PostStamp`)."""
    return PostStamp(post.id, post.version, post.author.name)


def check_post_etag(post: Post) -> None:
    """The `If-Match` precondition of a change to `post` (the services call it)."""
    blp.check_etag(post_etag(post))


def page_of_posts(on: Blueprint, page: PageRequest, *, author_id: int | None = None,
                  search: SearchQuery | None = None, feed_of: int | None = None
                  ) -> tuple[Sequence[PostView], dict[str, str]]:
    """A page of posts and its `Link`, tagged with its posts' stamps (`page_etag`). A client
    revalidating a copy is first answered from the stamps alone, read without titles and bodies:
    a 304 when its copy is current."""
    criteria: dict[str, Any] = {"author_id": author_id, "search": search, "feed_of": feed_of}
    if request.if_none_match:
        stamps = posts.list_post_stamps(page, **criteria)
        on.set_etag(page_etag(stamps.items, stamps.next_key))
    found = posts.list_posts(page, **criteria)
    on.set_etag(page_etag([post_etag(post) for post in found.items], found.next_key))
    return found.items, next_link(found.next_key)


def _own_user_id() -> str:
    return f"user:{current_user.id}"


# Schema instances, not classes: webargs builds a new schema per request from a class.
@blp.route("", methods=["GET"])
@blp.etag
@blp.arguments(PostListArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PostSchema(many=True), headers=LINK_HEADER)
@blp.problems(429, 503)
@blp.doc(operationId="listPosts", security=PUBLIC)
def list_posts(args):
    """All posts, newest first.

    Filter by `author_id`, and search with `q` (see its description). Keyset-paginated:
    follow `Link: rel="next"` for the next page."""
    return page_of_posts(blp, page_request(args, posts.SORT_KEY), author_id=args.get("author_id"),
                         search=args.get("q"))


@blp.route("", methods=["POST"])
@auth_required()
@blp.arguments(PostCreateSchema)
@idempotent(_own_user_id)
@blp.response(201, PostSchema, headers={**LOCATION_HEADER, **RATE_LIMIT_HEADERS})
@blp.problems(400, 401, 409, 413, 415, 422, 429, **IDEMPOTENCY_PROBLEMS,
              d409="A request with this `Idempotency-Key` is still running; retry after `Retry-After` seconds.")
@blp.doc(operationId="createPost", security=BEARER)
def create_post(fields):
    """Write a post as the caller.

    Send an `Idempotency-Key` to make retries safe. `Location` is the new post's URL."""
    post = posts.create_post(current_user, **fields)
    return post, {"Location": url_for("posts.get_post", post_id=post.id)}


@blp.route("/<int:post_id>", methods=["GET"])
@blp.etag
@blp.response(200, PostSchema)
@blp.problems(404, 429, 503)
@blp.doc(operationId="getPost", security=PUBLIC)
def get_post(post_id: int):
    """One post with its author.

    Send its `ETag` in `If-None-Match` to get a 304 without a body while it is unchanged."""
    post = posts.read_post(post_id)
    blp.set_etag(post_etag(post))
    return post


@blp.route("/<int:post_id>", methods=["PATCH"])
@auth_required()
@blp.etag
@blp.arguments(PostUpdateSchema)
@blp.response(200, PostSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 403, 404, 413, 415, 429)
@blp.doc(operationId="updatePost", security=BEARER)
def update_post(changes, post_id: int):
    """Change a post's title or body.

    Its author or an admin may. Send `If-Match` to change only the version you read."""
    with blp.etag_on_failure(lambda: post_etag(posts.read_post(post_id))):
        post = posts.update_post(current_user, posts.load_post(post_id), changes, check_post_etag)
    blp.set_etag(post_etag(post))
    return post


@blp.route("/<int:post_id>", methods=["DELETE"])
@auth_required()
@blp.etag
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 403, 404, 429)
@blp.doc(operationId="deletePost", security=BEARER)
def delete_post(post_id: int):
    """Delete a post.

    Its author or an admin may. Send `If-Match` to delete only the version you read."""
    with blp.etag_on_failure(lambda: post_etag(posts.read_post(post_id))):
        posts.delete_post(current_user, posts.load_post(post_id), check_post_etag)
    return ""
