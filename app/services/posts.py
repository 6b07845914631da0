"""Posts: writing, reading newest first, searching, and who may change them.

Reads give `PostView`s, built by one query builder and used by the API, the admin
pages and the CLI alike; ORM objects are loaded only where something is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, select, tuple_

from app.errors import NotFound, PermissionDenied
from app.extensions import db, reads
from app.models import Post, User, is_possible_id
from app.pagination import Page, PageRequest, page_of
from app.search import SEARCH_VECTOR, SearchQuery, search_condition, search_parameter
from app.services import users

EDITABLE_FIELDS = ("title", "body")
SORT_KEY = (datetime, int)  # (created_at, id), newest first
# A search first looks for its page among this many of the newest posts, read through the
# `created_at` index: enough for any word in more than one post in 200. Rarer words then get
# all their matches from the search index, which is cheap because they are rare; the
# planner's own estimates cannot tell the two cases apart (bench/where-the-time-goes.md).
SEARCH_WINDOW = 5000


@dataclass(frozen=True, slots=True)
class AuthorView:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class PostView:
    """A post as every reader sees it, with its author's id and name."""

    id: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime
    author: AuthorView

    @classmethod
    def of_row(cls, row: Row) -> PostView:
        post_id, title, body, created_at, updated_at, author_id, author_name = row
        return cls(post_id, title, body, created_at, updated_at, AuthorView(author_id, author_name))

    @classmethod
    def of_post(cls, post: Post) -> PostView:
        return cls(post.id, post.title, post.body, post.created_at, post.updated_at,
                   AuthorView(post.author.id, post.author.name))


# ---- writes -----------------------------------------------------------------------


def create_post(author: User, *, title: str, body: str) -> PostView:
    users.require_verified(author)
    # By id: the author (the caller, read with their token) needs no place in this transaction.
    post = Post(author_id=author.id, title=title, body=body)
    db.session.add(post)
    db.session.commit()
    return PostView(post.id, post.title, post.body, post.created_at, post.updated_at,
                    AuthorView(author.id, author.name))


def load_post(post_id: int) -> Post:
    """The post as an object to change, with its author."""
    post = db.session.get(Post, post_id) if is_possible_id(post_id) else None
    if post is None:
        raise NotFound("Post not found.")
    return post


def can_edit(actor: User, post: Post | PostView) -> bool:
    author_id = post.author.id if isinstance(post, PostView) else post.author_id
    return actor.is_admin or actor.id == author_id


def update_post(actor: User, post: Post, changes: Mapping[str, Any]) -> PostView:
    if not can_edit(actor, post):
        raise PermissionDenied("Only the author or an admin may change this post.")
    users.require_verified(actor)
    for field in EDITABLE_FIELDS:
        if field in changes:
            setattr(post, field, changes[field])
    db.session.commit()
    return PostView.of_post(post)


def delete_post(actor: User, post: Post) -> None:
    if not can_edit(actor, post):
        raise PermissionDenied("Only the author or an admin may delete this post.")
    users.require_verified(actor)
    db.session.delete(post)
    db.session.commit()


# ---- reads --------------------------------------------------------------------------
# One Core statement per shape of request, built once with bound parameters (`limit`,
# `author_id`, `after_at`, `after_id`, `skip`, `search`, `window`), run on the read
# pool's autocommit connection (`reads.run`): see bench/where-the-time-goes.md.

_posts, _users = Post.__table__.c, User.__table__.c
_NEWEST_FIRST = (_posts.created_at.desc(), _posts.id.desc())


def _readable(posts: Any = Post.__table__) -> Select:
    """The columns of a `PostView`, from `posts` (the table, or a subquery shaped like it)."""
    return select(
        posts.c.id, posts.c.title, posts.c.body, posts.c.created_at, posts.c.updated_at,
        _users.id.label("author_id"), _users.name.label("author_name"),
    ).join_from(posts, User.__table__, _users.id == posts.c.author_id)


def _filtered(stmt: Select, *, by_author: bool, after: bool) -> Select:
    if by_author:
        stmt = stmt.where(_posts.author_id == bindparam("author_id"))
    if after:
        key = tuple_(bindparam("after_at", type_=_posts.created_at.type), bindparam("after_id"))
        stmt = stmt.where(tuple_(_posts.created_at, _posts.id) < key)
    return stmt


def _paged(stmt: Select, order: Sequence[Any], skip: bool) -> Select:
    stmt = stmt.order_by(*order).limit(bindparam("limit"))
    return stmt.offset(bindparam("skip")) if skip else stmt


_ONE_POST = _readable().where(_posts.id == bindparam("post_id"))


@cache
def _page_statement(by_author: bool, after: bool, skip: bool) -> Select:
    return _paged(_filtered(_readable(), by_author=by_author, after=after), _NEWEST_FIRST, skip)


@cache
def _search_in_newest(dialect: str, by_author: bool, after: bool) -> Select:
    """Matches among the `window` newest posts, read newest first through the
    `created_at` index: cheap for any word that is not rare."""
    newest = select(_posts.id, _posts.created_at, SEARCH_VECTOR.label("search_vector"))
    recent = _filtered(newest, by_author=by_author, after=after).order_by(*_NEWEST_FIRST).limit(
        bindparam("window")).subquery("recent")
    matching = search_condition(dialect, search_vector=recent.c.search_vector, post_id=recent.c.id)
    hits = select(recent.c.id, recent.c.created_at).where(matching)
    return _top_of(hits.order_by(recent.c.created_at.desc(), recent.c.id.desc()).limit(bindparam("limit")))


@cache
def _search_everywhere(dialect: str, by_author: bool, after: bool, skip: bool) -> Select:
    """Every match, found through the search index and then sorted: cheap for rare words.
    Materialised, so the planner cannot trade the index for a walk of every post."""
    matching = search_condition(dialect, search_vector=SEARCH_VECTOR, post_id=_posts.id)
    found = _filtered(select(_posts.id, _posts.created_at).where(matching), by_author=by_author, after=after)
    matches = found.cte("matches").prefix_with("MATERIALIZED")
    return _top_of(_paged(select(matches), (matches.c.created_at.desc(), matches.c.id.desc()), skip))


def _top_of(ids: Select) -> Select:
    """The posts of a page of (id, created_at), newest first: joined after sorting, so only
    the page's rows are read in full."""
    top = ids.subquery("top")
    stmt = _readable().join(top, top.c.id == _posts.id)
    return stmt.order_by(top.c.created_at.desc(), top.c.id.desc())


def read_post(post_id: int) -> PostView:
    row = None
    if is_possible_id(post_id):
        row = reads.run(lambda connection: connection.execute(_ONE_POST, {"post_id": post_id}).first())
    if row is None:
        raise NotFound("Post not found.")
    return PostView.of_row(row)


def list_posts(
    page: PageRequest,
    *,
    author_id: int | None = None,
    search: SearchQuery | None = None,
) -> Page[PostView]:
    """Newest first, by one author if given, matching `search` if given."""
    by_author, after, skip = author_id is not None, page.after is not None, bool(page.skip)
    parameters: dict[str, Any] = {"limit": page.limit + 1, "author_id": author_id, "skip": page.skip}
    if after:
        parameters["after_at"], parameters["after_id"] = page.after
    dialect = db.engine.dialect.name
    if search is not None:
        parameters.update(search=search_parameter(search, dialect), window=SEARCH_WINDOW)

    def read(connection: Connection) -> Sequence[Row]:
        if search is None:
            return connection.execute(_page_statement(by_author, after, skip), parameters).all()
        if dialect == "postgresql" and not skip:
            rows = connection.execute(_search_in_newest(dialect, by_author, after), parameters).all()
            if len(rows) > page.limit:
                return rows
        return connection.execute(_search_everywhere(dialect, by_author, after, skip), parameters).all()

    views = [PostView.of_row(row) for row in reads.run(read)]
    return page_of(views, page.limit, lambda post: (post.created_at, post.id))
