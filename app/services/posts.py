"""Posts: writing, listing newest first, and who may change them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, select, tuple_
from sqlalchemy.orm import contains_eager

from app.database import run_read
from app.errors import NotFound, PermissionDenied
from app.extensions import db
from app.models import Post, User, is_possible_id
from app.pagination import Page, PageRequest, page_of
from app.services import users

EDITABLE_FIELDS = ("title", "body")
SORT_KEY = (datetime, int)  # (created_at, id), newest first


def create_post(author: User, *, title: str, body: str) -> Post:
    users.require_verified(author)
    post = Post(author=author, title=title, body=body)
    db.session.add(post)
    db.session.commit()
    return post


def _with_author() -> Select[tuple[Post]]:
    return select(Post).join(Post.author).options(contains_eager(Post.author))


def get_post(post_id: int) -> Post:
    post = db.session.scalar(_with_author().where(Post.id == post_id)) if is_possible_id(post_id) else None
    if post is None:
        raise NotFound("Post not found.")
    return post


# The API's read paths: posts as plain rows with the author's id and name, from one
# Core statement built once. Building ORM objects cost more than the query (bench/results.md).
_posts, _users = Post.__table__.c, User.__table__.c
_READABLE = select(
    _posts.id,
    _posts.title,
    _posts.body,
    _posts.created_at,
    _posts.updated_at,
    _users.id.label("author_id"),
    _users.name.label("author_name"),
).join_from(Post.__table__, User.__table__, _users.id == _posts.author_id)


_ONE_POST = _READABLE.where(_posts.id == bindparam("post_id"))
_AUTHOR = select(_users.id).where(_users.id == bindparam("author_id"))


def read_post(post_id: int) -> Row:
    """One post as a row, as `list_post_rows` gives; `get_post` gives the object to change.

    The read paths use `run_read`'s connection rather than the ORM session: the
    session's begin/close bookkeeping cost more than the statement (bench/results.md).
    """
    row = None
    if is_possible_id(post_id):
        row = run_read(lambda connection: connection.execute(_ONE_POST, {"post_id": post_id}).first())
    if row is None:
        raise NotFound("Post not found.")
    return row


def _newest_first(base: Select, *, by_author: bool, title_contains: str | None, after: bool, skip: bool) -> Select:
    """The page query, with bound parameters (`limit`, `author_id`, `after_at`, `after_id`,
    `skip`) so that one statement object serves every request of its shape."""
    stmt = base.order_by(_posts.created_at.desc(), _posts.id.desc()).limit(bindparam("limit"))
    if by_author:
        stmt = stmt.where(_posts.author_id == bindparam("author_id"))
    if title_contains:
        stmt = stmt.where(_posts.title.icontains(title_contains, autoescape=True))
    if after:
        key = tuple_(bindparam("after_at", type_=_posts.created_at.type), bindparam("after_id"))
        stmt = stmt.where(tuple_(_posts.created_at, _posts.id) < key)
    elif skip:
        stmt = stmt.offset(bindparam("skip"))
    return stmt


@cache
def _row_page_statement(by_author: bool, after: bool, skip: bool) -> Select:
    """Built once per shape: building a statement and its cache key cost about as much
    as the rest of the service (bench/results.md)."""
    return _newest_first(_READABLE, by_author=by_author, title_contains=None, after=after, skip=skip)


def _page_parameters(page: PageRequest, author_id: int | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {"limit": page.limit + 1, "author_id": author_id, "skip": page.skip}
    if page.after is not None:
        parameters["after_at"], parameters["after_id"] = page.after
    return parameters


def _page(items: Sequence[Any], limit: int) -> Page:
    return page_of(items, limit, lambda post: (post.created_at, post.id))


def list_posts(page: PageRequest, *, author_id: int | None = None, title_contains: str | None = None) -> Page[Post]:
    """Newest first, as objects with their authors joined in the same statement."""
    stmt = _newest_first(
        _with_author(),
        by_author=author_id is not None,
        title_contains=title_contains,
        after=page.after is not None,
        skip=bool(page.skip),
    )
    return _page(list(db.session.scalars(stmt, _page_parameters(page, author_id))), page.limit)


def list_post_rows(
    page: PageRequest,
    *,
    author_id: int | None = None,
    title_contains: str | None = None,
    author_must_exist: bool = False,
) -> Page[Row]:
    """The same page as `list_posts`, as rows like `read_post`'s: the API's hot path.

    `author_must_exist`: an unknown author is a NotFound rather than an empty page.
    """
    shape = {"by_author": author_id is not None, "after": page.after is not None, "skip": bool(page.skip)}
    if title_contains:
        stmt = _newest_first(_READABLE, title_contains=title_contains, **shape)
    else:
        stmt = _row_page_statement(**shape)
    parameters = _page_parameters(page, author_id)
    if author_must_exist and not is_possible_id(author_id or 0):
        raise NotFound("User not found.")

    def read(connection: Connection) -> Sequence[Row]:
        if author_must_exist and connection.scalar(_AUTHOR, {"author_id": author_id}) is None:
            raise NotFound("User not found.")
        return connection.execute(stmt, parameters).all()

    return _page(run_read(read), page.limit)


def can_edit(actor: User, post: Post) -> bool:
    return actor.is_admin or actor.id == post.author_id


def update_post(actor: User, post: Post, changes: Mapping[str, Any]) -> Post:
    if not can_edit(actor, post):
        raise PermissionDenied("Only the author or an admin may change this post.")
    users.require_verified(actor)
    for field in EDITABLE_FIELDS:
        if field in changes:
            setattr(post, field, changes[field])
    db.session.commit()
    return post


def delete_post(actor: User, post: Post) -> None:
    if not can_edit(actor, post):
        raise PermissionDenied("Only the author or an admin may delete this post.")
    users.require_verified(actor)
    db.session.delete(post)
    db.session.commit()

