"""Following: who follows whom, both lists, and how a user looks to someone who may follow them.

The users' `followers_count` and `following_count` are kept by database triggers on
`follows` (migration 0007), so nothing here counts or adjusts them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from app.errors import Conflict, NotFound, SelfFollow
from app.extensions import db
from app.models import Follow, User, is_possible_id
from app.pagination import Page, PageRequest, page_of
from app.services.sessions import Resolution
from app.services.users import get_user, require_verified

SORT_KEY = (datetime, int)  # (followed at, user id), newest follow first


def follow(actor: User, user_id: int) -> None:
    """Idempotent: following again changes nothing. Only active users may be followed: a
    deactivated one still exists (reading it is 200), so following it is a conflict, not a 404."""
    require_verified(actor)
    target = get_user(user_id)
    if not target.is_active:
        raise Conflict("This account is deactivated: it cannot be followed.")
    if target.id == actor.id:
        raise SelfFollow("You cannot follow yourself.", "You cannot follow yourself.")
    insert = (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(Follow)
    try:
        db.session.execute(insert.values(follower_id=actor.id, followed_id=target.id).on_conflict_do_nothing())
    except IntegrityError:  # the user was deleted meanwhile
        db.session.rollback()
        raise NotFound("User not found.") from None


def unfollow(actor: User, user_id: int) -> None:
    """Idempotent: unfollowing someone not followed changes nothing. Works on a deactivated
    user too, so a follow can always be taken back."""
    get_user(user_id)
    db.session.execute(delete(Follow).where(Follow.follower_id == actor.id, Follow.followed_id == user_id))


def list_followers(user_id: int, page: PageRequest) -> Page[User]:
    """Who follows the user, newest follow first."""
    return _listed(user_id, page, them=Follow.follower_id, side=Follow.followed_id)


def list_following(user_id: int, page: PageRequest) -> Page[User]:
    """Whom the user follows, newest follow first."""
    return _listed(user_id, page, them=Follow.followed_id, side=Follow.follower_id)


def _listed(user_id: int, page: PageRequest, *, them, side) -> Page[User]:
    get_user(user_id)
    backwards = page.before is not None  # the page before the key: read from it, nearest first
    order = (Follow.created_at.asc(), User.id.asc()) if backwards else (Follow.created_at.desc(), User.id.desc())
    stmt = (select(User, Follow.created_at).join(Follow, them == User.id).where(side == user_id)
            .order_by(*order).limit(page.limit + 1))
    if page.after is not None:
        stmt = stmt.where(tuple_(Follow.created_at, User.id) < tuple_(*page.after))
    elif backwards:
        stmt = stmt.where(tuple_(Follow.created_at, User.id) > tuple_(*page.before))
    elif page.skip:
        stmt = stmt.offset(page.skip)
    rows = db.session.execute(stmt).all()
    keyed = page_of(rows, page, lambda row: (row[1], row[0].id))
    return Page([row[0] for row in keyed.items], keyed.next_key, keyed.previous_key)


def is_following(follower_id: int, followed_id: int) -> bool:
    return db.session.get(Follow, (follower_id, followed_id)) is not None


def user_seen_by(viewer: User, user_id: int, read_with_token: Resolution | None = None) -> User:
    """The user with `followed_by_me` read for `viewer` (left unread when it is the viewer
    themself), in one statement: the counters are columns of the user. No statement at all
    when the statement that resolved the viewer's token read them already."""
    if read_with_token is not None and user_id in read_with_token.users:
        return _followed_by(viewer, read_with_token.users[user_id], user_id in read_with_token.followed)
    if not is_possible_id(user_id):
        raise NotFound("User not found.")
    followed = exists().where(Follow.follower_id == viewer.id, Follow.followed_id == User.id)
    row = db.session.execute(select(User, followed).where(User.id == user_id)).first()
    if row is None:
        raise NotFound("User not found.")
    return _followed_by(viewer, row[0], bool(row[1]))


def with_follow_state(viewer: User, user: User) -> User:
    """`user` as `viewer` sees them: with `followed_by_me` read (if it was not), unless it is
    the viewer themself."""
    if user.id == viewer.id or user.followed_by_me is not None:
        return user
    return _followed_by(viewer, user, is_following(viewer.id, user.id))


def _followed_by(viewer: User, user: User, following: bool) -> User:
    if user.id != viewer.id:
        set_committed_value(user, "followed_by_me", following)  # as loaded: the user is not changed
    return user
