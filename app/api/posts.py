"""Posts: public reading, writing by any signed-in user, changes by author or admin."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask_jwt_extended import current_user, jwt_required

from app.api import LINK_HEADER, LOCATION_HEADER, RATE_LIMIT_HEADERS, Blueprint, json_response, search_limited
from app.pagination import Page, next_link, page_request
from app.schemas import PostCreateSchema, PostListArgsSchema, PostSchema, PostUpdateSchema
from app.services import posts
from app.services.posts import PostView

blp = Blueprint("posts", __name__, url_prefix="/api/posts", description="Posts")
BEARER = [{"bearerAuth": []}]


def post_json(post: PostView) -> dict[str, Any]:
    """The one serializer of a post, shaped exactly as `PostSchema` documents it.

    By hand because marshmallow's per-field dump was the largest cost of a list
    request (bench/where-the-time-goes.md); a test holds the two to the same output.
    The timestamps stay datetimes: the JSON provider writes them as marshmallow does.
    """
    return {
        "id": post.id,
        "title": post.title,
        "body": post.body,
        "author": {"id": post.author.id, "name": post.author.name},
        "created_at": post.created_at,
        "updated_at": post.updated_at,
    }


def dump_posts(page: Page) -> Response:
    return json_response([post_json(post) for post in page.items], headers=next_link(page.next_key))


# Schema instances, not classes: webargs builds a new schema per request from a class.
@blp.route("", methods=["GET"])
@search_limited
@blp.arguments(PostListArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PostSchema(many=True), headers=LINK_HEADER)
@blp.problems(429, 503)
@blp.doc(operationId="listPosts")
def list_posts(args):
    """Newest first; filter by `author_id`, and search with `q` (see its description)."""
    page = posts.list_posts(
        page_request(args, posts.SORT_KEY), author_id=args.get("author_id"), search=args.get("q")
    )
    return dump_posts(page)


@blp.route("", methods=["POST"])
@jwt_required()
@blp.arguments(PostCreateSchema)
@blp.response(201, PostSchema, headers={**LOCATION_HEADER, **RATE_LIMIT_HEADERS})
@blp.problems(400, 401, 413, 415, 429)
@blp.doc(operationId="createPost", security=BEARER)
def create_post(fields):
    """Write a post as the caller."""
    post = posts.create_post(current_user, **fields)
    location = url_for("posts.get_post", post_id=post.id)
    return json_response(post_json(post), 201, {"Location": location})


@blp.route("/<int:post_id>", methods=["GET"])
@blp.response(200, PostSchema)
@blp.problems(404, 429, 503)
@blp.doc(operationId="getPost")
def get_post(post_id: int):
    """One post with its author."""
    return json_response(post_json(posts.read_post(post_id)))


@blp.route("/<int:post_id>", methods=["PATCH"])
@jwt_required()
@blp.arguments(PostUpdateSchema)
@blp.response(200, PostSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 403, 404, 413, 415, 429)
@blp.doc(operationId="updatePost", security=BEARER)
def update_post(changes, post_id: int):
    """Change a post's title or body: its author or an admin."""
    return json_response(post_json(posts.update_post(current_user, posts.load_post(post_id), changes)))


@blp.route("/<int:post_id>", methods=["DELETE"])
@jwt_required()
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 403, 404, 429)
@blp.doc(operationId="deletePost", security=BEARER)
def delete_post(post_id: int):
    """Delete a post: its author or an admin."""
    posts.delete_post(current_user, posts.load_post(post_id))
    return ""
