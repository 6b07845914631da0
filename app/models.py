"""The tables: users, their posts, who follows whom, and revoked tokens."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

MAX_ID = 2**31 - 1  # int4 primary keys: no larger id exists (and SQLite cannot even bind > int64)


def is_possible_id(value: int) -> bool:
    """Whether a row could have this id; larger values are a 404 without asking the database."""
    return 0 < value <= MAX_ID


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps the offset itself; SQLite stores naive text, so values are
    written as naive UTC and read back as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Role(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("age IS NULL OR (age >= 18 AND age <= 120)", name="ck_users_age_range"),
        Index("ix_users_created_at", "created_at"),
        # Small partial indexes: counting admins or inactive users never reads every user.
        Index("ix_users_admins", "id", postgresql_where=text("role = 'admin'"), sqlite_where=text("role = 'admin'")),
        Index("ix_users_inactive", "id", postgresql_where=text("NOT is_active"), sqlite_where=text("NOT is_active")),
        {"sqlite_autoincrement": True},  # SQLite would reuse a deleted user's id (migration 0003)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    age: Mapped[int | None] = mapped_column(Integer)
    password_hash: Mapped[str] = mapped_column(String(60))
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="user_role", values_callable=lambda e: [m.value for m in e],
             native_enum=False, create_constraint=True, length=10, validate_strings=True),
        default=Role.USER,
        server_default=Role.USER.value,
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    # Kept by triggers on `follows` (migration 0007) in the transaction of each follow,
    # unfollow or deletion: exact under concurrency, read with the user at no extra cost.
    followers_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    following_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    posts: Mapped[list[Post]] = relationship(
        back_populates="author", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class Post(db.Model):
    __tablename__ = "posts"
    __table_args__ = (
        Index("ix_posts_created_at_id", "created_at", "id"),
        Index("ix_posts_author_id_created_at_id", "author_id", "created_at", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    author: Mapped[User] = relationship(back_populates="posts")

    def __repr__(self) -> str:
        return f"<Post {self.id} by {self.author_id}>"


class Follow(db.Model):
    """`follower_id` follows `followed_id`; the users' counters follow these rows (triggers)."""

    __tablename__ = "follows"
    __table_args__ = (
        CheckConstraint("follower_id <> followed_id", name="ck_follows_not_self"),
        # Newest follow first, per side: the followers and following lists are keyset walks.
        Index("ix_follows_followed_id_created_at", "followed_id", "created_at", "follower_id"),
        Index("ix_follows_follower_id_created_at", "follower_id", "created_at", "followed_id"),
    )

    follower_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    followed_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class DailyCount(db.Model):
    """Rows of `subject` ('users' or 'posts') created per UTC day.

    Kept by database triggers (migration 0005) in the transaction of each insert,
    delete or backdating, so totals and charts read a few hundred rows, not whole tables.
    """

    __tablename__ = "daily_counts"

    subject: Mapped[str] = mapped_column(String(20), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class RevokedToken(db.Model):
    """A JWT that must no longer be accepted, shared by every worker and host.

    Rows can go once the token would have expired anyway (`flask tokens prune`).
    """

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_type: Mapped[str] = mapped_column(String(10))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
