"""Posts: public reading, writing by any signed-in user, changes by author or admin."""

from __future__ import annotations

from flask import url_for
from flask_jwt_extended import current_user

from app.api import (
    BEARER,
    CACHE_HEADERS,
    ETAG_HEADER,
    IDEMPOTENCY_PROBLEMS,
    LINK_HEADER,
    LOCATION_HEADER,
    PUBLIC,
    RATE_LIMIT_HEADERS,
    Blueprint,
)
from app.api.conditional import current_tag_on_failure, etag_header, if_match, page_headers, tag_of
from app.api.idempotency import idempotent
from app.identity import auth_required
from app.models import Post
from app.pagination import page_request
from app.schemas import PostCreateSchema, PostListArgsSchema, PostSchema, PostUpdateSchema
from app.services import posts
from app.services.posts import PostView

blp = Blueprint("posts", __name__, url_prefix="/api/posts", description="Posts")
_post = PostSchema()


def post_tag(post: Post | PostView) -> str:
    """A post's ETag, as a read of it shows it."""
    return tag_of(_post.dump(post if isinstance(post, PostView) else PostView.of_post(post)))


def _own_user_id() -> str:
    return f"user:{current_user.id}"


# Schema instances, not classes: webargs builds a new schema per request from a class.
@blp.route("", methods=["GET"])
@blp.cached_page
@blp.arguments(PostListArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PostSchema(many=True), headers={**LINK_HEADER, **CACHE_HEADERS})
@blp.problems(429, 503)
@blp.doc(operationId="listPosts", security=PUBLIC)
def list_posts(args):
    """All posts, newest first.

    Filter by `author_id`, and search with `q` (see its description). Keyset-paginated:
    follow `Link: rel="next"` for the next page."""
    page = posts.list_posts(
        page_request(args, posts.SORT_KEY), author_id=args.get("author_id"), search=args.get("q")
    )
    return page.items, page_headers(page)


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
@blp.cached
@blp.response(200, PostSchema, headers=CACHE_HEADERS)
@blp.problems(404, 429, 503)
@blp.doc(operationId="getPost", security=PUBLIC)
def get_post(post_id: int):
    """One post with its author.

    Send its `ETag` in `If-None-Match` to get a 304 without a body while it is unchanged."""
    return posts.read_post(post_id)


@blp.route("/<int:post_id>", methods=["PATCH"])
@auth_required()
@blp.arguments(PostUpdateSchema)
@blp.response(200, PostSchema, headers={**ETAG_HEADER, **RATE_LIMIT_HEADERS})
@blp.conditional
@blp.problems(400, 401, 403, 404, 413, 415, 429)
@blp.doc(operationId="updatePost", security=BEARER)
def update_post(changes, post_id: int):
    """Change a post's title or body.

    Its author or an admin may. Send `If-Match` to change only the version you read."""
    with current_tag_on_failure(lambda: post_tag(posts.read_post(post_id))):
        post = posts.update_post(current_user, posts.load_post(post_id), changes, if_match(post_tag))
    return post, etag_header(post_tag(post))


@blp.route("/<int:post_id>", methods=["DELETE"])
@auth_required()
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.conditional
@blp.problems(401, 403, 404, 429)
@blp.doc(operationId="deletePost", security=BEARER)
def delete_post(post_id: int):
    """Delete a post.

    Its author or an admin may. Send `If-Match` to delete only the version you read."""
    with current_tag_on_failure(lambda: post_tag(posts.read_post(post_id))):
        posts.delete_post(current_user, posts.load_post(post_id), if_match(post_tag))
    return ""
