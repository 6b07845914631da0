"""Posts: writing, reading newest first, searching, and who may change them.

Reads give `PostView`s, built by one query builder and used by the API, the admin
pages and the CLI alike; ORM objects are loaded only where something is written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import (
    CompoundSelect,
    Executable,
    Row,
    Select,
    bindparam,
    exists,
    func,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.errors import NotFound, PermissionDenied, UnreadableSearch
from app.extensions import db
from app.models import Follow, Post, User, is_possible_id
from app.pagination import Page, PageRequest, page_of
from app.search import (
    SEARCH_VECTOR,
    SearchQuery,
    WordStatistics,
    refused_search,
    search_condition,
    search_parameter,
)
from app.services import Precondition, flush, no_precondition, users

EDITABLE_FIELDS = ("title", "body")
SORT_KEY = (datetime, int)  # (created_at, id), newest first
# How a search finds its page on PostgreSQL; the planner's own estimates cannot tell a rare
# word from a common one (docs/decisions/0002-two-step-search.md), so ANALYZE's word statistics decide
# (`WordStatistics`). A query they call common walks the newest posts through the `created_at`
# index until its page is full (`WALK_ALL`). Any other query, a word they do not list
# included (one added since the last ANALYZE, or in no post at all), is rare: the search index
# hands over all its matches, which are few, in one statement. Only without statistics (before
# the first ANALYZE), and for a feed (whose authors' words they say nothing about), does a
# search look among the `SEARCH_WINDOW` newest posts first, enough for any word in more than
# one post in 200, and ask the index only when that finds less than a page.
SEARCH_WINDOW = 5000
WALK_ALL = 2**62
WORD_STATISTICS_SECONDS = 300  # ANALYZE changes them rarely; each worker rereads them this often
# A feed first looks for its page among at most this many of the newest posts (see `_feed_statement`).
# The walk stops at its page, so a wider window costs only the feeds whose authors write few of the
# posts: with 500 of 100,000 authors followed, a window of 2,000 found half a page and sent every
# such feed on to 500 index lookups (six times the cost of reading the 4,000 posts that hold a page).
FEED_WINDOW = 20_000


@dataclass(frozen=True, slots=True)
class AuthorView:
    id: int
    name: str


class PostStamp(NamedTuple):
    """What decides how a post looks to every reader, its ETag's makings: its row version, which
    every change of its title or body moves, and its author's name, the one thing of another row
    it shows."""

    id: int
    version: int
    author_name: str


@dataclass(frozen=True, slots=True)
class PostView:
    """A post as every reader sees it, with its author's id and name."""

    id: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime
    author: AuthorView
    version: int  # not shown, but part of its ETag

    @classmethod
    def of_row(cls, row: Row) -> PostView:
        post_id, title, body, created_at, updated_at, author_id, author_name, version = row[:8]
        return cls(post_id, title, body, created_at, updated_at, AuthorView(author_id, author_name), version)

    @classmethod
    def of_post(cls, post: Post) -> PostView:
        return cls(post.id, post.title, post.body, post.created_at, post.updated_at,
                   AuthorView(post.author.id, post.author.name), post.version)


# ---- writes -----------------------------------------------------------------------


def create_post(author: User, *, title: str, body: str) -> PostView:
    users.require_verified(author)
    # By id: the author (the caller, read with their token) needs no place in this transaction.
    post = Post(author_id=author.id, title=title, body=body)
    db.session.add(post)
    flush()
    return PostView(post.id, post.title, post.body, post.created_at, post.updated_at,
                    AuthorView(author.id, author.name), post.version)


def load_post(post_id: int) -> Post:
    """The post as an object to change, with its author."""
    post = db.session.get(Post, post_id) if is_possible_id(post_id) else None
    if post is None:
        raise NotFound("Post not found.")
    return post


def can_edit(actor: User, post: Post | PostView) -> bool:
    author_id = post.author.id if isinstance(post, PostView) else post.author_id
    return actor.is_admin or actor.id == author_id


def update_post(actor: User, post: Post, changes: Mapping[str, Any],
                precondition: Precondition = no_precondition) -> PostView:
    if not can_edit(actor, post):
        raise PermissionDenied("Only the author or an admin may change this post.")
    users.require_verified(actor)
    precondition(post)
    for field in EDITABLE_FIELDS:
        if field in changes:
            setattr(post, field, changes[field])
    flush()
    return PostView.of_post(post)


def delete_post(actor: User, post: Post, precondition: Precondition = no_precondition) -> None:
    if not can_edit(actor, post):
        raise PermissionDenied("Only the author or an admin may delete this post.")
    users.require_verified(actor)
    precondition(post)
    db.session.delete(post)
    flush()


# ---- reads --------------------------------------------------------------------------
# One Core statement per shape of request, built once with bound parameters (`limit`,
# `author_id`, `reader_id`, `after_at`, `after_id`, `before_at`, `before_id`, `skip`, `search`, `window`), so that
# SQLAlchemy compiles each shape once (its compiled cache) and the database sees few distinct statements.

_posts, _users, _follows = Post.__table__.c, User.__table__.c, Follow.__table__.c
_followed, _inactive = User.__table__.alias("followed"), User.__table__.alias("inactive")
# The active authors `reader_id` follows: a feed reads their posts only, so an unfollow or a
# deactivation takes their posts out of the next page at once.
_FOLLOWED_AUTHORS = (
    select(_follows.followed_id)
    .join_from(Follow.__table__, _followed, _followed.c.id == _follows.followed_id)
    .where(_follows.follower_id == bindparam("reader_id"), _followed.c.is_active)
)
_NEWEST_FIRST = (_posts.created_at.desc(), _posts.id.desc())


def _newest_first(columns: Any, backwards: bool) -> tuple[Any, Any]:
    """The lists' order over `columns` (a table's or a subquery's); read `backwards` (the page
    before a `before` key), oldest first from the key, as `page_of` expects."""
    if backwards:
        return columns.created_at.asc(), columns.id.asc()
    return columns.created_at.desc(), columns.id.desc()


def _readable(posts: Any = Post.__table__, *, full: bool = True) -> Select:
    """The columns of a `PostView` (`full`) or of a `PostStamp` and its sort key, from `posts`
    (the table, or a subquery shaped like it)."""
    if not full:
        return select(posts.c.id, posts.c.version, _users.name.label("author_name"), posts.c.created_at).join_from(
            posts, User.__table__, _users.id == posts.c.author_id)
    return select(
        posts.c.id, posts.c.title, posts.c.body, posts.c.created_at, posts.c.updated_at,
        _users.id.label("author_id"), _users.name.label("author_name"), posts.c.version,
    ).join_from(posts, User.__table__, _users.id == posts.c.author_id)


def _filtered(stmt: Select, *, by_author: bool, after: bool, feed: bool = False, before: bool = False) -> Select:
    if by_author:
        stmt = stmt.where(_posts.author_id == bindparam("author_id"))
    if feed:
        stmt = stmt.where(_posts.author_id.in_(_FOLLOWED_AUTHORS))
    if after:
        key = tuple_(bindparam("after_at", type_=_posts.created_at.type), bindparam("after_id"))
        stmt = stmt.where(tuple_(_posts.created_at, _posts.id) < key)
    if before:
        key = tuple_(bindparam("before_at", type_=_posts.created_at.type), bindparam("before_id"))
        stmt = stmt.where(tuple_(_posts.created_at, _posts.id) > key)
    return stmt


def _paged(stmt: Select, order: Sequence[Any], skip: bool) -> Select:
    stmt = stmt.order_by(*order).limit(bindparam("limit"))
    return stmt.offset(bindparam("skip")) if skip else stmt


_ONE_POST = _readable().where(_posts.id == bindparam("post_id"))


@cache
def _page_statement(by_author: bool, after: bool, skip: bool, feed: bool, full: bool, before: bool) -> Select:
    return _paged(_filtered(_readable(full=full), by_author=by_author, after=after, feed=feed, before=before),
                  _newest_first(_posts, before), skip)


@cache
def _feed_statement(after: bool, full: bool) -> Select:
    """A feed page on PostgreSQL, in one statement of two steps.

    First the `feed_window` newest posts (after the cursor), read newest first through the
    `created_at` index and kept if their author is followed, until a page is found: enough when
    the followed authors write more than one post in a thousand, and cheaper the more authors
    one follows. Only
    when that finds less than a page, each followed author's newest `limit` posts, read
    through the `(author_id, created_at, id)` index and merged: cost grows with the number
    of authors followed, never with the number of posts. The second step's one-time filter
    keeps it from running at all otherwise (bench/feed.py measures both).
    """
    newest = _filtered(select(_posts.id, _posts.created_at, _posts.author_id), by_author=False, after=after)
    recent = newest.order_by(*_NEWEST_FIRST).limit(bindparam("feed_window")).subquery("recent")
    # The followed ids as one hash table (a hashed SubPlan: `IS TRUE` keeps the planner from
    # turning it into a join, which would read the whole window before sorting it), and the few
    # deactivated users through their partial index: a probe of both indexes per post read would
    # cost many times the buffers, and an array's `= ANY` compares each post with every id.
    followed = recent.c.author_id.in_(
        select(_follows.followed_id).where(_follows.follower_id == bindparam("reader_id"))).is_(true())
    inactive = exists().where(_inactive.c.id == recent.c.author_id, ~_inactive.c.is_active)
    in_window = (select(recent.c.id, recent.c.created_at).where(followed, ~inactive)
                 .order_by(recent.c.created_at.desc(), recent.c.id.desc()).limit(bindparam("limit"))
                 .cte("in_window").prefix_with("MATERIALIZED"))
    found = select(func.count()).select_from(in_window).scalar_subquery()

    per_author = _filtered(select(_posts.id, _posts.created_at), by_author=False, after=after).where(
        _posts.author_id == _follows.followed_id).order_by(*_NEWEST_FIRST).limit(bindparam("limit")).lateral("each")
    merged = (_FOLLOWED_AUTHORS.with_only_columns(per_author.c.id, per_author.c.created_at).join(per_author, true())
              .order_by(per_author.c.created_at.desc(), per_author.c.id.desc()).limit(bindparam("limit"))
              .subquery("merged"))
    either = union_all(
        select(in_window.c.id, in_window.c.created_at).where(found == bindparam("limit")),
        select(merged.c.id, merged.c.created_at).where(found < bindparam("limit")),
    )
    return _top_of(either, full)


@cache
def _search_in_newest(dialect: str, by_author: bool, after: bool, feed: bool, full: bool, before: bool) -> Select:
    """Matches among the `window` newest posts (or, `before` a key, the oldest after it), read
    in order through the `created_at` index: cheap for any word that is not rare."""
    newest = select(_posts.id, _posts.created_at, SEARCH_VECTOR.label("search_vector"))
    recent = _filtered(newest, by_author=by_author, after=after, feed=feed, before=before).order_by(
        *_newest_first(_posts, before)).limit(bindparam("window")).subquery("recent")
    matching = search_condition(dialect, search_vector=recent.c.search_vector, post_id=recent.c.id)
    hits = select(recent.c.id, recent.c.created_at).where(matching)
    return _top_of(hits.order_by(*_newest_first(recent.c, before)).limit(bindparam("limit")), full, before)


@cache
def _search_everywhere(dialect: str, by_author: bool, after: bool, skip: bool, feed: bool, full: bool,
                       before: bool) -> Select:
    """Every match, found through the search index and then sorted: cheap for rare words.
    Materialised, so the planner cannot trade the index for a walk of every post."""
    matching = search_condition(dialect, search_vector=SEARCH_VECTOR, post_id=_posts.id)
    found = _filtered(select(_posts.id, _posts.created_at).where(matching), by_author=by_author, after=after,
                      feed=feed, before=before)
    matches = found.cte("matches").prefix_with("MATERIALIZED")
    return _top_of(_paged(select(matches), _newest_first(matches.c, before), skip), full, before)


def _top_of(ids: Select | CompoundSelect, full: bool, before: bool = False) -> Select:
    """The posts of a page of (id, created_at), in order: joined after sorting, so only
    the page's rows are read in full."""
    top = ids.subquery("top")
    stmt = _readable(full=full).join(top, top.c.id == _posts.id)
    return stmt.order_by(*_newest_first(top.c, before))


_word_statistics: dict[str, tuple[float, WordStatistics | None]] = {}  # per database URL: (read at, statistics)


class SearchPlan(Enum):
    """How a search on PostgreSQL finds its page (see `SEARCH_WINDOW`)."""

    WALK = "walk the newest posts until the page is full"
    INDEX = "all matches from the search index, then sorted"
    WINDOW_THEN_INDEX = "the SEARCH_WINDOW newest posts, then the index if that is not a page"


def _search_plan(search: SearchQuery, *, feed: bool) -> SearchPlan:
    """The cheaper way to this query's page by ANALYZE's word statistics (PostgreSQL, no `skip`)."""
    if feed:  # how common a word is says nothing of how often the followed authors use it
        return SearchPlan.WINDOW_THEN_INDEX
    key, now = str(db.engine.url), time.monotonic()
    read_at, statistics = _word_statistics.get(key, (float("-inf"), None))
    if now - read_at > WORD_STATISTICS_SECONDS:
        statistics = WordStatistics.read(db.session)
        _word_statistics[key] = (now, statistics)
    if statistics is None:  # never analysed: a common word would make the index read every post
        return SearchPlan.WINDOW_THEN_INDEX
    return SearchPlan.WALK if statistics.best_walked(search) else SearchPlan.INDEX


def read_post(post_id: int) -> PostView:
    rows = []
    if is_possible_id(post_id):
        rows = db.session.execute(_ONE_POST, {"post_id": post_id}).all()
    if not rows:
        raise NotFound("Post not found.")
    return PostView.of_row(rows[0])


def list_posts(
    page: PageRequest,
    *,
    author_id: int | None = None,
    search: SearchQuery | None = None,
    feed_of: int | None = None,
) -> Page[PostView]:
    """Newest first, by one author if given, or by the active authors `feed_of` follows
    (their feed); matching `search` if given."""
    rows = _read_page(page, author_id=author_id, search=search, feed_of=feed_of, full=True)
    return page_of([PostView.of_row(row) for row in rows], page, lambda post: (post.created_at, post.id))


def list_post_stamps(
    page: PageRequest,
    *,
    author_id: int | None = None,
    search: SearchQuery | None = None,
    feed_of: int | None = None,
) -> Page[PostStamp]:
    """The stamps of the posts `list_posts` would answer, in its order and with its next key:
    what the page's ETag is made of, read without titles and bodies."""
    rows = _read_page(page, author_id=author_id, search=search, feed_of=feed_of, full=False)
    keyed = page_of(rows, page, lambda row: (row.created_at, row.id))
    return Page([PostStamp(row.id, row.version, row.author_name) for row in keyed.items], keyed.next_key,
                keyed.previous_key)


def _read_page(page: PageRequest, *, author_id: int | None, search: SearchQuery | None, feed_of: int | None,
               full: bool) -> Sequence[Row]:
    by_author, after, skip, feed = author_id is not None, page.after is not None, bool(page.skip), feed_of is not None
    before = page.before is not None
    parameters: dict[str, Any] = {"limit": page.limit + 1, "author_id": author_id, "skip": page.skip,
                                  "reader_id": feed_of}
    if after:
        parameters["after_at"], parameters["after_id"] = page.after
    if before:
        parameters["before_at"], parameters["before_id"] = page.before
    dialect = db.engine.dialect.name
    plan = SearchPlan.INDEX  # SQLite's FTS5, and any `skip`
    if search is not None:
        if dialect == "postgresql" and not skip:
            plan = _search_plan(search, feed=feed)
        parameters.update(search=search_parameter(search, dialect),
                          window=WALK_ALL if plan is SearchPlan.WALK else SEARCH_WINDOW)

    def read(connection: Session) -> Sequence[Row]:
        if search is None:
            if feed and dialect == "postgresql" and not skip and not before:
                return _all(connection, _feed_statement(after, full), {**parameters, "feed_window": FEED_WINDOW})
            return _all(connection, _page_statement(by_author, after, skip, feed, full, before), parameters)
        if plan is not SearchPlan.INDEX:
            rows = _all(connection, _search_in_newest(dialect, by_author, after, feed, full, before), parameters)
            if len(rows) > page.limit or plan is SearchPlan.WALK:
                return rows
        return _all(connection, _search_everywhere(dialect, by_author, after, skip, feed, full, before), parameters)

    try:
        return read(db.session)
    except DBAPIError as error:
        if search is None or not refused_search(error):
            raise
        raise UnreadableSearch("The search could not be read: use words of letters and digits.") from None


def _all(session: Session, statement: Executable, parameters: dict[str, Any]) -> Sequence[Row]:
    return session.execute(statement, parameters).all()
