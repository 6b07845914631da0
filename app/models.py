"""The tables: users, their posts, who follows whom, sign-in sessions, idempotency keys and the mail outbox."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.orm import Mapped, make_transient_to_detached, mapped_column, query_expression, relationship
from sqlalchemy.orm.attributes import set_committed_value

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

    def bind_processor(self, dialect: Dialect) -> Any:
        return super().bind_processor(dialect) if dialect.name == "sqlite" else None

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """None on PostgreSQL, whose driver already gives aware datetimes: no call per value."""
        return super().result_processor(dialect, coltype) if dialect.name == "sqlite" else None

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
    # Proven by following the link mailed to `email`; a new email starts unverified.
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    # Kept by triggers on `follows` (migration 0007) in the transaction of each follow,
    # unfollow or deletion: exact under concurrency, read with the user at no extra cost.
    followers_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    following_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    # Moves on when the credentials do (a new password, a reset, "log out everywhere"): device
    # tokens and password-guessing budgets of an earlier epoch no longer count (app/services/throttle.py).
    credentials_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    # Whether the user a request speaks for follows this one: read by the statement that shows
    # a user to someone else (app/services/follows.py); None, and not shown, otherwise.
    followed_by_me: Mapped[bool | None] = query_expression()

    posts: Mapped[list[Post]] = relationship(
        back_populates="author", cascade="all, delete-orphan", passive_deletes=True
    )

    # Every ORM UPDATE and DELETE says `WHERE version = :loaded`, and bumps it: a write
    # based on a stale read changes nothing (StaleDataError), whatever the other worker did.
    __mapper_args__ = {"version_id_col": version}

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


USER_COLUMNS = tuple(column.key for column in User.__table__.c)


def detached_user(row: Row) -> User:
    """A `User` from a row of the read path (its columns first, in table order), as if loaded
    and then detached: every attribute read, no session holds it. Reads need nothing more;
    a write that needs it in its transaction attaches it without a query
    (`db.session.merge(user, load=False)`), though most need only its id and role."""
    user = User()
    for i, key in enumerate(USER_COLUMNS):
        set_committed_value(user, key, row[i])  # as loaded: no change history to build and then drop
    make_transient_to_detached(user)
    return user


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

    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    author: Mapped[User] = relationship(back_populates="posts")

    __mapper_args__ = {"version_id_col": version}

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


class SessionKind(enum.StrEnum):
    API = "api"  # a refresh-token family: access and refresh tokens carry its id as `sid`
    ADMIN = "admin"  # the admin pages' cookie carries its id


class AuthSession(db.Model):
    """One sign-in: an API refresh-token family or an admin page session.

    Every token and admin cookie names its session; a request is accepted only while
    the row is alive (`ended_at` unset, `expires_at` ahead). Ending sessions is one
    UPDATE that every worker and host sees at its next request.
    """

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_id_ended_at", "user_id", "ended_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    # The only refresh token of the family that may still be spent; any earlier one is a reuse.
    refresh_jti: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(20))

    def __repr__(self) -> str:
        return f"<AuthSession {self.id} {self.kind} user {self.user_id}>"


class IdempotencyKey(db.Model):
    """The stored response of a create made with an `Idempotency-Key`, replayed to retries.

    Written in the transaction of the create itself: a row exists exactly when the
    create committed (app/services/idempotency.py).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "method", "path", "key", name="uq_idempotency_keys_request"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(80))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    headers: Mapped[dict] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class MailStatus(enum.StrEnum):
    WAITING = "waiting"  # due at `next_attempt_at`; a worker holds it while `locked_until` is ahead
    SENT = "sent"
    FAILED = "failed"  # refused for good (5xx) or out of attempts: an operator may send it again


class OutboxMessage(db.Model):
    """One message to send, written in the transaction of the change that causes it.

    The request renders it and adds the row; `flask worker` (app/worker.py) claims it, sends it
    and records the result. `message_id` is fixed at enqueue time, so a message sent twice
    (a worker killed after the server took it) carries the same `Message-ID` both times.
    """

    __tablename__ = "mail_outbox"
    __table_args__ = (
        # The workers' claim: the due messages, oldest first.
        Index("ix_mail_outbox_due", "status", "next_attempt_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    # Rendered at enqueue time (docs/decisions/0011-*); emptied once sent: the links they carry
    # are live for a while, and a sent message is not needed again.
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    status: Mapped[MailStatus] = mapped_column(
        Enum(MailStatus, name="mail_status", values_callable=lambda e: [m.value for m in e],
             native_enum=False, create_constraint=True, length=10, validate_strings=True),
        default=MailStatus.WAITING, server_default=MailStatus.WAITING.value,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    # The lease of the worker sending it: past it, the worker is presumed dead and another may send it.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # W3C trace context of the request that queued it (opentelemetry.propagate), when tracing is on.
    trace_context: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.template} {self.status}>"


class ScheduledJob(db.Model):
    """A periodic upkeep job and when it is next due: the worker that locks its row (SKIP LOCKED)
    runs it, so one worker at a time runs each job, however many there are."""

    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_result: Mapped[str | None] = mapped_column(String(200))
