"""The home feed: posts by the people the caller follows."""

from __future__ import annotations

from flask_jwt_extended import current_user

from app.api import BEARER, CACHE_HEADERS, LINK_HEADER, Blueprint
from app.api.conditional import page_headers
from app.identity import auth_required
from app.pagination import page_request
from app.schemas import PostSchema, SearchArgsSchema
from app.services import posts

blp = Blueprint("feed", __name__, url_prefix="/api/feed", description="The caller's home feed")


@blp.route("", methods=["GET"])
@auth_required()
@blp.cached_page
@blp.arguments(SearchArgsSchema(), location="query", as_kwargs=False)
@blp.response(200, PostSchema(many=True), headers={**LINK_HEADER, **CACHE_HEADERS})
@blp.problems(401, 429, 503)
@blp.doc(operationId="getFeed", security=BEARER)
def get_feed(args):
    """Posts by the users the caller follows, newest first.

    Only active authors' posts. Keyset-paginated: follow `Link: rel="next"` for the next page;
    search them with `q`, as on `GET /api/posts`. An unfollow or a deactivation takes that
    author's posts out of the next page."""
    page = posts.list_posts(page_request(args, posts.SORT_KEY), search=args.get("q"), feed_of=current_user.id)
    return page.items, page_headers(page)
