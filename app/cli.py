"""`flask` commands for deployers: users, seed data, token upkeep, the mail worker and the outbox."""

from __future__ import annotations

import csv
import functools
import io
import itertools
import random
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from marshmallow import ValidationError
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import DBAPIError

from app import metrics, tracing
from app.emails import normalise_email
from app.errors import DomainError
from app.extensions import db
from app.models import Follow, MailStatus, Post, Role, User
from app.pagination import PageRequest
from app.schemas import UserCreateSchema
from app.security import hash_password
from app.services import idempotency, outbox, sessions, users
from app.worker import Worker

users_cli = AppGroup("users", help="Manage user accounts.")
tokens_cli = AppGroup("tokens", help="Session and token upkeep.")
idempotency_cli = AppGroup("idempotency", help="Idempotency-Key upkeep.")
mail_cli = AppGroup("mail", help="The mail outbox.")

SEED_PASSWORD = "Password123"
USER_COLUMNS = ("id", "email", "name", "role", "active", "verified")
LIST_PAGE = 1000
# Seeded accounts live at a reserved domain (RFC 2606): no mail reaches them, and the seed
# tells them from real accounts by it, so fake posts and follows never touch a real one.
SEED_DOMAIN = "seed.example"
FOLLOWS_MIN, FOLLOWS_MAX = 50, 500
COPY_CHUNK_ROWS = 2000
LOAD_MAINTENANCE_WORK_MEM = "512MB"
_WORDS = ("flask", "python", "postgres", "keyset", "cursor", "token", "worker", "index",
          "schema", "request", "deploy", "cache", "query", "latency", "backend", "note")


def _fail(message: str) -> None:
    raise click.ClickException(message)


def unit_of_work(command: Callable) -> Callable:
    """A command is one unit of work, as a request is: the services add and flush, the command
    commits once when it finishes. A database that is down or refuses a statement is a message,
    not a traceback, and nothing is committed."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = command(*args, **kwargs)
            db.session.commit()
            return result
        except DBAPIError as error:
            db.session.rollback()
            reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
            _fail(f"database error: {reason}")

    return wrapper


def _validated(**fields: str) -> dict[str, Any]:
    """The fields as registration checks them, or a message naming each bad one."""
    try:
        return UserCreateSchema(partial=tuple({"email", "name", "password"} - fields.keys())).load(fields)
    except ValidationError as error:
        _fail("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.messages.items()))
        raise  # unreachable: _fail raises


def _existing(email: str) -> User:
    user = users.find_by_email(_validated(email=email)["email"])
    if user is None:
        _fail(f"No account with the email {normalise_email(email)}.")
    return user


@users_cli.command("create-admin")
@click.argument("email")
@click.option("--name", default="Admin", show_default=True, help="Display name.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted without echo when omitted.")
@unit_of_work
def create_admin(email: str, name: str, password: str) -> None:
    """Create a new admin account. An existing account is never taken over: see `promote`."""
    data = _validated(email=email, name=name, password=password)
    existing = users.find_by_email(data["email"])
    if existing is not None:
        _fail(f"An account with the email {existing.email} already exists (id {existing.id}); nothing was "
              f"changed. To make it an admin, keeping its owner's password, run `flask users promote "
              f"{existing.email}`; to set its password, `flask users set-password {existing.email}`.")
    try:
        user = users.register(**data, role=Role.ADMIN, email_verified=True)  # the operator vouches
    except DomainError as error:
        _fail(error.detail)
    click.echo(f"Created admin {user.email} (id {user.id}).")


@users_cli.command("promote")
@click.argument("email")
@click.option("--mark-verified", is_flag=True,
              help="Count the email as verified (you know its owner); otherwise it must be verified already.")
@unit_of_work
def promote(email: str, mark_verified: bool) -> None:
    """Make an existing, active, verified account admin. Its password stays the one its owner chose."""
    user = _existing(email)
    if not user.is_active:
        _fail(f"{user.email} is deactivated; re-activate it before making it an admin.")
    if not user.email_verified and not mark_verified:
        _fail(f"{user.email} has not verified its email address, so nobody has shown that its owner is "
              f"who you think. Ask them to follow the verification link (a new one: POST "
              f"/api/auth/verify-email/resend), or pass --mark-verified if you know them.")
    if mark_verified:
        user.email_verified = True
    if user.is_admin:
        click.echo(f"{user.email} (id {user.id}) is already an admin; its role is unchanged.")
        return
    users.promote(user)
    click.echo(f"Promoted {user.email} (id {user.id}) to admin. Its password was kept: whoever registered "
               f"the account signs in with it. Its sessions were ended.")


@users_cli.command("demote")
@click.argument("email")
@unit_of_work
def demote(email: str) -> None:
    """Make an admin a regular user and end its sessions. The last active admin stays one."""
    user = _existing(email)
    if not user.is_admin:
        click.echo(f"{user.email} (id {user.id}) is not an admin; its role is unchanged.")
        return
    _refused_as_message(users.demote, user)
    click.echo(f"Demoted {user.email} (id {user.id}) to a regular user. Its sessions were ended.")


@users_cli.command("deactivate")
@click.argument("email")
@unit_of_work
def deactivate(email: str) -> None:
    """Deactivate an account: it can no longer sign in, and its sessions end. The last active admin stays."""
    user = _existing(email)
    if not user.is_active:
        click.echo(f"{user.email} (id {user.id}) is already deactivated.")
        return
    _refused_as_message(users.deactivate, user)
    click.echo(f"Deactivated {user.email} (id {user.id}). Its sessions were ended.")


@users_cli.command("list")
@click.option("--role", type=click.Choice([role.value for role in Role]), help="Only accounts with this role.")
@click.option("--inactive", is_flag=True, help="Only deactivated accounts.")
@unit_of_work
def list_users(role: str | None, inactive: bool) -> None:
    """Print the accounts as a table, by id: email, name, role, whether active and verified."""
    rows = [USER_COLUMNS]
    page = PageRequest(limit=LIST_PAGE)
    while True:
        found = users.list_users(page, role=Role(role) if role else None, is_active=False if inactive else None)
        rows += [(str(user.id), user.email, user.name, user.role.value, _yes_no(user.is_active),
                  _yes_no(user.email_verified)) for user in found.items]
        if found.next_key is None:
            break
        page = PageRequest(limit=LIST_PAGE, after=found.next_key)
    if len(rows) == 1:
        click.echo("No accounts match." if role or inactive else "No accounts yet.")
        return
    widths = [max(len(row[column]) for row in rows) for column in range(len(USER_COLUMNS))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{len(rows) - 1} account{'s' if len(rows) != 2 else ''}.")


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _refused_as_message(action: Callable[[User], User], user: User) -> None:
    """A rule that says no (the last active admin stays) is one line and a non-zero exit."""
    try:
        action(user)
    except DomainError as error:
        db.session.rollback()
        _fail(f"{user.email} (id {user.id}): {error.detail} Nothing was changed.")


@users_cli.command("set-password")
@click.argument("email")
@click.option("--password", prompt="New password", hide_input=True, confirmation_prompt=True,
              help="Prompted without echo when omitted.")
@unit_of_work
def set_password(email: str, password: str) -> None:
    """Set an account's password and end all of its sessions (API tokens and admin pages)."""
    user = _existing(email)
    users.set_password(user, _validated(password=password)["password"])
    click.echo(f"Password of {user.email} (id {user.id}) changed; all of its sessions were ended.")


@tokens_cli.command("prune")
@unit_of_work
def prune_tokens() -> None:
    """Delete sessions that have ended or expired (their tokens are refused either way)."""
    removed = sessions.prune()
    click.echo(f"Removed {removed} ended or expired sessions.")


@idempotency_cli.command("prune")
@unit_of_work
def prune_idempotency_keys() -> None:
    """Delete stored responses whose Idempotency-Key has expired (IDEMPOTENCY_TTL_HOURS)."""
    removed = idempotency.prune()
    click.echo(f"Removed {removed} expired idempotency keys.")


@click.command("worker")
@with_appcontext
def worker_command() -> None:
    """Deliver the mail outbox and run the periodic upkeep (pruning sessions, idempotency keys
    and sent mail), until SIGTERM or SIGINT. Run as many as you like, on any hosts (PostgreSQL);
    on SQLite, one."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    tracing.start_tracing(app)  # in this process, as gunicorn's workers do after their fork
    if app.config["WORKER_METRICS_BIND"]:
        metrics.serve_worker_metrics(app.config["WORKER_METRICS_BIND"])
    worker = Worker(app, threading.Event())
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    try:
        worker.run()
    finally:
        tracing.stop_tracing()  # what is queued leaves before the process does


@mail_cli.command("status")
@unit_of_work
def mail_status() -> None:
    """Print how many messages wait and have failed, then each waiting or failed message."""
    state = outbox.state()
    click.echo(f"{state.waiting} waiting (the oldest for {state.oldest_age_seconds:.0f} s), {state.failed} failed.")
    rows = [("id", "status", "to", "template", "attempts", "next attempt", "last error")]
    rows += [(str(m.id), m.status.value, outbox.mask(m.recipient), m.template, str(m.attempts),
              m.next_attempt_at.isoformat(timespec="seconds") if m.status == MailStatus.WAITING else "-",
              m.last_error or "-") for m in outbox.unsent()]
    if len(rows) == 1:
        return
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]))


@mail_cli.command("retry")
@click.argument("message_id", type=int)
@unit_of_work
def mail_retry(message_id: int) -> None:
    """Send a failed message again (its id is in `flask mail status`)."""
    try:
        message = outbox.send_again(message_id)
    except DomainError as error:
        _fail(error.detail)
    click.echo(f"Message {message.id} to {outbox.mask(message.recipient)} is queued again.")


@click.command("seed")
@with_appcontext
@click.option("--users", "user_count", type=click.IntRange(0, 10_000_000), default=100, show_default=True)
@click.option("--posts", "post_count", type=click.IntRange(0, 100_000_000), default=1000, show_default=True)
@click.option("--batch", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True)
@click.option("--seed", "random_seed", type=int, default=42, show_default=True)
@click.option("--follows/--no-follows", default=True, show_default=True,
              help=f"Each new seeded user follows {FOLLOWS_MIN} to {FOLLOWS_MAX} other seeded users.")
@unit_of_work
def seed(user_count: int, post_count: int, batch: int, random_seed: int, follows: bool) -> None:
    """Fill the database with fake users, posts and follows, fast (bulk inserts).

    \b
    Seeded users have emails `user<N>.<time>@seed.example` and the password
    `Password123`: sign in as one (the command prints one such email) with
    POST /api/auth/login {"email": ..., "password": "Password123"}.
    Posts and follows go to seeded users only (old and new): real accounts get
    no posts, no followers and follow no one.

    Post bodies draw from 16 common words, plus `kestrel` (about 1% of posts),
    `quokka` (10 posts) and `Café` (0.1%). Each new seeded user follows 50 to 500
    others (most follow few, the first exactly 500), chosen with a skew towards
    the earliest users, as popularity is.
    """
    rng = random.Random(random_seed)
    password_hash = hash_password(SEED_PASSWORD)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    now = datetime.now(UTC)
    start_id = (db.session.scalar(select(db.func.max(User.id))) or 0)
    with click.progressbar(length=user_count, label="users") as bar:
        for offset in range(0, user_count, batch):
            rows = [
                {"email": f"user{start_id + i}.{stamp}@{SEED_DOMAIN}", "name": f"User {start_id + i}",
                 "age": rng.randint(18, 90), "password_hash": password_hash, "role": Role.USER,
                 "is_active": True, "email_verified": True, "created_at": now, "updated_at": now}
                for i in range(offset + 1, min(offset + batch, user_count) + 1)
            ]
            db.session.execute(insert(User), rows)
            db.session.commit()
            bar.update(len(rows))
    author_ids = list(db.session.scalars(
        select(User.id).where(User.email.endswith(f"@{SEED_DOMAIN}", autoescape=True)).order_by(User.id)))
    if post_count and not author_ids:
        _fail("There are no users to write posts (seeded posts go to seeded users only); seed some with --users.")
    with click.progressbar(length=post_count, label="posts") as bar:
        _load(Post, ("author_id", "title", "body", "created_at", "updated_at"),
              _post_rows(rng, author_ids, post_count, now), post_count, batch, bar.update)
    click.echo(f"Seeded {user_count} users and {post_count} posts.")
    if follows and user_count:
        followers = author_ids[-user_count:]
        click.echo(f"Seeded {_seed_follows(rng, followers, author_ids, batch)} follows.")
    if author_ids:
        email = db.session.scalar(select(User.email).where(User.id == author_ids[-1]))
        click.echo(f"Sign in as a seeded user, e.g. {email}, with the password {SEED_PASSWORD}.")


def _post_rows(rng: random.Random, author_ids: list[int], post_count: int, now: datetime) -> Iterator[tuple]:
    """The seeded posts, oldest first, spread evenly over the last 60 days."""
    span = timedelta(days=60)
    for i in range(post_count):
        created = now - span + span * (i / max(post_count, 1))
        title = " ".join(rng.choices(_WORDS, k=4)).capitalize()
        body = " ".join(rng.choices(_WORDS, k=40)) + _rare_words(rng, i, post_count)
        yield (rng.choice(author_ids), f"{title} #{i}", body, created, created)


def _rare_words(rng: random.Random, index: int, post_count: int) -> str:
    """Words of known rarity, so that searches can be measured at every selectivity:
    `kestrel` in about 1% of posts, `quokka` in exactly 10 (when there are at least 10),
    `Café` (accented) in about 0.1%."""
    words = ""
    if rng.random() < 0.01:
        words += " kestrel"
    if index % max(post_count // 10, 1) == 0:
        words += " quokka"
    if rng.random() < 0.001:
        words += " Café"
    return words


def _seed_follows(rng: random.Random, followers: list[int], candidates: list[int], batch: int) -> int:
    """Each follower follows FOLLOWS_MIN..FOLLOWS_MAX others (skewed: most follow few; the
    first exactly FOLLOWS_MAX), drawn with Zipf-like weights so that early users are popular."""
    weights = list(itertools.accumulate(1 / (rank + 10) for rank in range(len(candidates))))
    now = datetime.now(UTC)
    counted = [0]

    def rows() -> Iterator[tuple]:
        with click.progressbar(followers, label="follows") as bar:
            for index, follower in enumerate(bar):
                wanted = FOLLOWS_MAX if index == 0 else FOLLOWS_MIN + int(
                    (FOLLOWS_MAX - FOLLOWS_MIN) * rng.random() ** 3)
                wanted = min(wanted, len(candidates) - 1)
                chosen: set[int] = set()
                while len(chosen) < wanted:
                    chosen.update(rng.choices(candidates, cum_weights=weights, k=wanted - len(chosen)))
                    chosen.discard(follower)
                counted[0] += len(chosen)
                for followed in chosen:
                    yield (follower, followed, now)

    _load(Follow, ("follower_id", "followed_id", "created_at"), rows(), len(followers) * FOLLOWS_MIN, batch,
          lambda _: None)
    return counted[0]


def _load(model: type[db.Model], columns: tuple[str, ...], rows: Iterable[tuple], expected: int, batch: int,
          progress: Callable[[int], None]) -> None:
    """Rows into a table, committed. On PostgreSQL the way its documentation says to populate a
    database ("Populating a Database"): one COPY, streamed, so the server parses one chunk while
    the next is made; and when the load is at least as big as the table, its secondary indexes
    and foreign keys are dropped first and built again once at the end, which is far cheaper than
    maintaining them row by row. All of it is one transaction: nobody sees the table without its
    indexes or keys (they wait on its lock), and a failure leaves it as it was.
    Elsewhere: executemany in batches, each committed."""
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        iterator = iter(rows)
        while chunk := list(itertools.islice(iterator, batch)):
            db.session.execute(insert(model), [dict(zip(columns, row, strict=True)) for row in chunk])
            db.session.commit()
            progress(len(chunk))
        return
    table = model.__tablename__
    # One statement loads the whole table: the request-sized statement timeout would cancel it.
    connection.execute(text("SET LOCAL statement_timeout = 0"))
    rebuilt = _rebuilt_after_load(connection, table, expected)
    for name, _ in rebuilt.indexes:
        connection.execute(text(f"DROP INDEX {name}"))
    for name, _ in rebuilt.foreign_keys:
        connection.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
    cursor = connection.connection.cursor()
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)",
                       _CsvStream(rows, progress))
    # Index builds sort in memory up to maintenance_work_mem: the default is small for millions of rows.
    connection.execute(text(f"SET LOCAL maintenance_work_mem = '{LOAD_MAINTENANCE_WORK_MEM}'"))
    for _, definition in rebuilt.indexes:
        connection.execute(text(definition))
    for name, definition in rebuilt.foreign_keys:
        # One query checks every row against the referenced table, instead of one check per row.
        connection.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"))
    db.session.commit()


@dataclass(frozen=True)
class _Rebuilt:
    indexes: list[tuple[str, str]]  # (quoted name, CREATE INDEX statement)
    foreign_keys: list[tuple[str, str]]  # (quoted name, constraint definition)


def _rebuilt_after_load(connection: Connection, table: str, rows: int) -> _Rebuilt:
    """What a load of `rows` rows drops and builds again: nothing when the table already holds
    more (rebuilding would cost more than maintaining). Definitions come from the catalog
    (`pg_get_indexdef`, `pg_get_constraintdef`), so they are rebuilt exactly as the migrations
    made them; indexes that back a constraint (primary key, unique) stay."""
    present = connection.scalar(text("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                                {"t": table})
    if rows < (present or 0):
        return _Rebuilt([], [])
    indexes = connection.execute(text("""
        SELECT quote_ident(c.relname), pg_get_indexdef(i.indexrelid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = CAST(:t AS regclass)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        ORDER BY c.relname"""), {"t": table}).all()
    foreign_keys = connection.execute(text("""
        SELECT quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' ORDER BY conname"""), {"t": table}).all()
    return _Rebuilt([tuple(row) for row in indexes], [tuple(row) for row in foreign_keys])


class _CsvStream(io.TextIOBase):
    """The file psycopg2's `copy_expert` reads COPY's input from: CSV made from the rows a chunk
    at a time, as the copy asks for it, so no load is ever held in memory whole."""

    def __init__(self, rows: Iterable[tuple], progress: Callable[[int], None]) -> None:
        self._rows = iter(rows)
        self._progress = progress
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        chunk = list(itertools.islice(self._rows, COPY_CHUNK_ROWS))
        self._writer.writerows(chunk)
        self._progress(len(chunk))
        return self._buffer.getvalue()

    readline = read


def register_commands(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(idempotency_cli)
    app.cli.add_command(mail_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(seed)
