"""Posts: writing, listing newest first, and who may change them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.orm import contains_eager

from app.errors import NotFound, PermissionDenied
from app.extensions import db
from app.models import MAX_ID, Post, User
from app.pagination import Page, PageRequest

EDITABLE_FIELDS = ("title", "body")
SORT_KEY = (datetime, int)  # (created_at, id), newest first


def create_post(author: User, *, title: str, body: str) -> Post:
    post = Post(author=author, title=title, body=body)
    db.session.add(post)
    db.session.commit()
    return post


def _with_author() -> Select[tuple[Post]]:
    return select(Post).join(Post.author).options(contains_eager(Post.author))


def get_post(post_id: int) -> Post:
    post = db.session.scalar(_with_author().where(Post.id == post_id)) if 0 < post_id <= MAX_ID else None
    if post is None:
        raise NotFound("Post not found.")
    return post


def list_posts(page: PageRequest, *, author_id: int | None = None,
               title_contains: str | None = None) -> Page[Post]:
    """Newest first, authors joined in the same statement (one query per page)."""
    stmt = _with_author().order_by(Post.created_at.desc(), Post.id.desc()).limit(page.limit + 1)
    if author_id is not None:
        stmt = stmt.where(Post.author_id == author_id)
    if title_contains:
        stmt = stmt.where(Post.title.icontains(title_contains, autoescape=True))
    if page.after is not None:
        stmt = stmt.where(tuple_(Post.created_at, Post.id) < tuple_(*page.after))
    elif page.skip:
        stmt = stmt.offset(page.skip)
    posts = list(db.session.scalars(stmt))
    more = len(posts) > page.limit
    posts = posts[: page.limit]
    return Page(posts, (posts[-1].created_at, posts[-1].id) if more else None)


def can_edit(actor: User, post: Post) -> bool:
    return actor.is_admin or actor.id == post.author_id


def update_post(actor: User, post: Post, changes: Mapping[str, Any]) -> Post:
    if not can_edit(actor, post):
        raise PermissionDenied("Only the author or an admin may change this post.")
    for field in EDITABLE_FIELDS:
        if field in changes:
            setattr(post, field, changes[field])
    db.session.commit()
    return post


def delete_post(actor: User, post: Post) -> None:
    if not can_edit(actor, post):
        raise PermissionDenied("Only the author or an admin may delete this post.")
    db.session.delete(post)
    db.session.commit()


def count_posts() -> int:
    return db.session.scalar(select(func.count()).select_from(Post)) or 0
