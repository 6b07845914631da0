"""Posts: public reading, writing by any signed-in user, changes by author or admin."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask_jwt_extended import current_user, jwt_required

from app.api import LINK_HEADER, LOCATION_HEADER, RATE_LIMIT_HEADERS, Blueprint, json_response
from app.pagination import Page, next_link, page_request
from app.schemas import PostCreateSchema, PostListArgsSchema, PostSchema, PostUpdateSchema
from app.services import posts

blp = Blueprint("posts", __name__, url_prefix="/api/posts", description="Posts")
BEARER = [{"bearerAuth": []}]
_post_schema = PostSchema()


def post_json(row: Any) -> dict[str, Any]:
    """A post row from the service, shaped exactly as `PostSchema` dumps a post.

    By hand because marshmallow's per-field dump was the largest cost of a list
    request (bench/results.md); a test holds the two to the same output. The
    timestamps stay datetimes: the JSON provider writes them as marshmallow does.
    """
    post_id, title, body, created_at, updated_at, author_id, author_name = row
    return {
        "id": post_id,
        "title": title,
        "body": body,
        "author": {"id": author_id, "name": author_name},
        "created_at": created_at,
        "updated_at": updated_at,
    }


def dump_posts(page: Page) -> Response:
    return json_response([post_json(row) for row in page.items], headers=next_link(page.next_key))


# Schema instances, not classes: webargs builds a new schema per request from a class.
@blp.route("", methods=["GET"])
@blp.arguments(PostListArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PostSchema(many=True), headers=LINK_HEADER)
@blp.problems(429)
def list_posts(args):
    """Newest first; filter by `author_id` and by `q` (case-insensitive, in the title)."""
    page = posts.list_post_rows(
        page_request(args, posts.SORT_KEY), author_id=args.get("author_id"), title_contains=args.get("q")
    )
    return dump_posts(page)


@blp.route("", methods=["POST"])
@jwt_required()
@blp.arguments(PostCreateSchema)
@blp.response(201, PostSchema, headers={**LOCATION_HEADER, **RATE_LIMIT_HEADERS})
@blp.problems(400, 401, 413, 415, 429)
@blp.doc(security=BEARER)
def create_post(fields):
    """Write a post as the caller."""
    post = posts.create_post(current_user, **fields)
    location = url_for("posts.get_post", post_id=post.id)
    return json_response(_post_schema.dump(post), 201, {"Location": location})


@blp.route("/<int:post_id>", methods=["GET"])
@blp.response(200, PostSchema)
@blp.problems(404, 429)
def get_post(post_id: int):
    """One post with its author."""
    return json_response(post_json(posts.read_post(post_id)))


@blp.route("/<int:post_id>", methods=["PATCH"])
@jwt_required()
@blp.arguments(PostUpdateSchema)
@blp.response(200, PostSchema, headers=RATE_LIMIT_HEADERS)
@blp.problems(400, 401, 403, 404, 413, 415, 429)
@blp.doc(security=BEARER)
def update_post(changes, post_id: int):
    """Change a post's title or body: its author or an admin."""
    post = posts.update_post(current_user, posts.get_post(post_id), changes)
    return json_response(_post_schema.dump(post))


@blp.route("/<int:post_id>", methods=["DELETE"])
@jwt_required()
@blp.response(204, headers=RATE_LIMIT_HEADERS)
@blp.problems(401, 403, 404, 429)
@blp.doc(security=BEARER)
def delete_post(post_id: int):
    """Delete a post: its author or an admin."""
    posts.delete_post(current_user, posts.get_post(post_id))
    return ""
