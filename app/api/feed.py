"""The home feed: posts by the people the caller follows."""

from __future__ import annotations

from flask_jwt_extended import current_user

from app.api import BEARER, LINK_HEADER, Blueprint
from app.api.posts import page_of_posts
from app.identity import auth_required
from app.pagination import page_request
from app.schemas import PostSchema, SearchArgsSchema
from app.services import posts

blp = Blueprint("feed", __name__, url_prefix="/api/feed", description="The caller's home feed")


@blp.route("", methods=["GET"])
@auth_required()
@blp.etag
@blp.arguments(SearchArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PostSchema(many=True), headers=LINK_HEADER)
@blp.problems(401, 429, 503)
@blp.doc(operationId="getFeed", security=BEARER)
def get_feed(args):
    """Posts by the users the caller follows, newest first.

    Only active authors' posts. Keyset-paginated: follow `Link: rel="next"` for the next page;
    search them with `q`, as on `GET /api/posts`. An unfollow or a deactivation takes that
    author's posts out of the next page."""
    return page_of_posts(blp, page_request(args, posts.SORT_KEY), search=args.get("q"), feed_of=current_user.id)
