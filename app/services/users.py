"""Users: registration, sign-in checks, who may see and change what."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, not_, or_, select

from app.emails import normalise_email
from app.errors import (
    AuthenticationFailed,
    Conflict,
    CurrentPasswordRequired,
    NotFound,
    PermissionDenied,
    WrongCurrentPassword,
)
from app.extensions import db
from app.models import Role, User, detached_user, is_possible_id
from app.pagination import Page, PageRequest, page_of
from app.security import hash_password, needs_rehash, verify_password
from app.services import Precondition, flush, links, no_precondition, sessions, throttle
from app.services.sessions import EndReason
from app.services.throttle import Client

ADMIN_ONLY_FIELDS = frozenset({"role", "is_active"})
# What an unverified account may still change of its own with REQUIRE_VERIFIED_EMAIL: a mistyped
# address is fixed only by changing it (its mail is budgeted), and a password must stay changeable.
ACCOUNT_REPAIR_FIELDS = frozenset({"email", "password", "current_password"})
SORT_KEY = (int,)  # id, ascending


EMAIL_TAKEN = "An account with this email already exists."


def register(*, email: str, name: str, password: str, age: int | None = None,
             role: Role = Role.USER, email_verified: bool = False) -> User:
    """Add an account (flushed: it has its id)."""
    user = User(email=email, name=name, age=age, role=role, password_hash=hash_password(password),
                email_verified=email_verified)
    db.session.add(user)
    flush(EMAIL_TAKEN)
    return user


def authenticate(email: str, password: str, client: Client) -> User:
    """The active user with these credentials; one identical failure for every wrong case.

    The guessing budgets are checked before bcrypt runs and spent only by failures. A
    hash made at another cost than `BCRYPT_ROUNDS` is replaced now that the password is
    known, so raising the cost reaches every account that signs in (and known and unknown
    emails cost the same: the dummy hash uses the current cost)."""
    user = find_by_email(email)
    with throttle.guess(throttle.budgets(email, user, client)):
        ok = verify_password(password, user.password_hash if user else None)
        if not ok or user is None or not user.is_active:
            raise AuthenticationFailed("Invalid email or password.")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        flush()
    return user


def check_current_password(user: User, password: str | None, client: Client | None, what: str = "password") -> None:
    """The current password is a password guess like a login, counted alike; a signed-in owner's
    session is their device (`Client.session`), so strangers' guesses do not lock them out."""
    if password is None:
        raise CurrentPasswordRequired(f"Required to change the {what}.")
    with throttle.guess(throttle.budgets(user.email, user, client or Client(ip="unknown"))):
        if not verify_password(password, user.password_hash):
            raise WrongCurrentPassword("Incorrect password.")


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


_EXISTS = select(User.id).where(User.id == bindparam("user_id"))


def ensure_exists(user_id: int) -> None:
    """NotFound for an unknown user."""
    if not is_possible_id(user_id) or db.session.scalar(_EXISTS, {"user_id": user_id}) is None:
        raise NotFound("User not found.")


def get_user(user_id: int, *, read: Mapping[int, User] | None = None) -> User:
    """The user to show or change. `read`: the users a statement of this request already read
    for this id (the one that resolved the caller's token); absent from it means unknown."""
    known = read if read is not None else {}
    user = known.get(user_id) if read is not None or not is_possible_id(user_id) else db.session.get(User, user_id)
    if user is None:
        raise NotFound("User not found.")
    return user


def list_users(page: PageRequest, *, search: str | None = None, role: Role | None = None,
               is_active: bool | None = None) -> Page[User]:
    """Users by id, keyset-paginated; the filters serve the admin pages. Read as rows (no
    identity map to fill for a page nobody changes), as detached `User`s."""
    backwards = page.before is not None
    stmt = select(*User.__table__.c).order_by(User.id.desc() if backwards else User.id).limit(page.limit + 1)
    if search:
        stmt = stmt.where(or_(User.email.icontains(search, autoescape=True),
                              User.name.icontains(search, autoescape=True)))
    if role is not None:
        stmt = stmt.where(User.role == role)
    if is_active is not None:
        # `NOT is_active` as the partial index `ix_users_inactive` says it: the planners of both
        # databases use a partial index only for its own predicate, not for `is_active IS false`.
        stmt = stmt.where(User.is_active if is_active else not_(User.is_active))
    if page.after is not None:
        stmt = stmt.where(User.id > page.after[0])
    elif backwards:
        stmt = stmt.where(User.id < page.before[0])
    elif page.skip:
        stmt = stmt.offset(page.skip)
    rows = db.session.execute(stmt).all()
    return page_of([detached_user(row) for row in rows], page, lambda user: (user.id,))


def require_verified(actor: User) -> None:
    """With `REQUIRE_VERIFIED_EMAIL`, accounts write only once their email is verified (posts,
    follows, their name). Their own email and password stay theirs to fix, and verifying needs
    no write permission."""
    if current_app.config.get("REQUIRE_VERIFIED_EMAIL") and not actor.email_verified:
        raise PermissionDenied("Verify your email address first: follow the link we mailed you, "
                               "or ask for a new one (POST /api/auth/verify-email/resend).")


def can_see_account(viewer: User | None, user: User) -> bool:
    """Whether `viewer` sees all of `user` (email, age, role, status) or only the public profile."""
    return viewer is not None and (viewer.is_admin or viewer.id == user.id)


def can_edit(actor: User, user: User) -> bool:
    return actor.is_admin or actor.id == user.id


def update_user(actor: User, user: User, changes: Mapping[str, Any], client: Client | None = None,
                precondition: Precondition = no_precondition) -> User:
    """Apply a partial update: the rules say yes or no first, then the change is made."""
    check_update(actor, user, changes, client, precondition)
    return _apply_update(user, changes)


def check_update(actor: User, user: User, changes: Mapping[str, Any], client: Client | None = None,
                 precondition: Precondition = no_precondition) -> None:
    """Who may change what of an account; raises the rule broken and changes nothing."""
    if not can_edit(actor, user):
        raise PermissionDenied("You may only change your own account.")
    precondition(user)
    if actor.id != user.id or changes.keys() - ACCOUNT_REPAIR_FIELDS:
        require_verified(actor)
    forbidden = sorted(ADMIN_ONLY_FIELDS & changes.keys())
    if forbidden and not actor.is_admin:
        raise PermissionDenied(f"Only an admin may change {', '.join(forbidden)}.")
    new_email = "email" in changes and changes["email"] != user.email
    if ("password" in changes or new_email) and (actor.id == user.id or not actor.is_admin):
        # Everyone, admins included, proves they know their own password before replacing it:
        # a stolen 15-minute access token must not become a permanent takeover.
        check_current_password(user, changes.get("current_password"), client,
                               "password" if "password" in changes else "email")
    if "role" in changes and changes["role"] != user.role:
        _guard_admin_removal(actor, user, "change the role of")
    if "is_active" in changes and not changes["is_active"] and user.is_active:
        _guard_admin_removal(actor, user, "deactivate")


def _apply_update(user: User, changes: Mapping[str, Any]) -> User:
    """Make a change `check_update` allowed, and what follows from it: sessions end, and a
    new email is unverified until its owner follows the link mailed to it."""
    end_reason = _sessions_end_reason(user, changes)
    new_email = "email" in changes and changes["email"] != user.email
    if new_email:  # its verification message spends the same budget as a resend
        throttle.spend_on_mail(user.id, changes["email"])
    for field in ("email", "name", "age", "role", "is_active"):
        if field in changes:
            setattr(user, field, changes[field])
    if "password" in changes:
        user.password_hash = hash_password(changes["password"])
        throttle.forget_devices(user.id)
    if end_reason is not None:
        sessions.end_all_of(user.id, end_reason)
    if new_email:
        # The new address is unproven until its owner follows the link mailed to it; the
        # change and its message land together or not at all.
        user.email_verified = False
        flush(EMAIL_TAKEN)
        links.send_verification(user)  # queued in this transaction: both commit or neither
    flush(EMAIL_TAKEN)
    return user


def _sessions_end_reason(user: User, changes: Mapping[str, Any]) -> str | None:
    """Why this change ends every session of the user, if it does: a new password, a new
    role (what the sessions were allowed to do has changed) or a deactivation."""
    if "password" in changes:
        return EndReason.PASSWORD
    if "role" in changes and changes["role"] != user.role:
        return EndReason.ROLE
    if "is_active" in changes and not changes["is_active"] and user.is_active:
        return EndReason.DEACTIVATED
    return None


def set_password(user: User, password: str) -> User:
    """Set a password without knowing the old one (an operator's command); ends every session."""
    user.password_hash = hash_password(password)
    sessions.end_all_of(user.id, EndReason.PASSWORD)
    throttle.forget_devices(user.id)
    flush()
    return user


def promote(user: User) -> User:
    """Make an existing account admin (an operator's command), keeping its password."""
    return _apply_update(user, {"role": Role.ADMIN})


def demote(user: User) -> User:
    """Make an admin a regular user (an operator's command); the last active admin stays."""
    if user.is_admin:
        _guard_last_admin(user, "demote")
    return _apply_update(user, {"role": Role.USER})


def deactivate(user: User) -> User:
    """Deactivate an account and end its sessions (an operator's command); the last active admin stays."""
    if user.is_active:
        _guard_last_admin(user, "deactivate")
    return _apply_update(user, {"is_active": False})


def end_sessions(actor: User, user: User) -> None:
    """End every session of `user`: their own "log out everywhere", or an admin's action."""
    if not can_edit(actor, user):
        raise PermissionDenied("You may only end your own sessions.")
    throttle.forget_devices(user.id)  # device tokens end with the sessions
    sessions.end_all_of(user.id, EndReason.LOGOUT_ALL if actor.id == user.id else EndReason.ADMIN)


def set_role(actor: User, user: User, role: Role, precondition: Precondition = no_precondition) -> User:
    return update_user(actor, user, {"role": role}, precondition=precondition)


def set_active(actor: User, user: User, is_active: bool, precondition: Precondition = no_precondition) -> User:
    return update_user(actor, user, {"is_active": is_active}, precondition)


def delete_user(actor: User, user: User, precondition: Precondition = no_precondition) -> None:
    if not actor.is_admin:
        raise PermissionDenied("Only an admin may delete users.")
    precondition(user)
    require_verified(actor)
    _guard_admin_removal(actor, user, "delete")
    db.session.delete(user)
    flush()


def _guard_admin_removal(actor: User, user: User, action: str) -> None:
    """An admin may not remove themself, and the last active admin must stay."""
    if actor.id == user.id and actor.is_admin:
        raise Conflict(f"You cannot {action} your own account.")
    _guard_last_admin(user, action)


def _guard_last_admin(user: User, action: str) -> None:
    if user.is_admin and user.is_active and len(_lock_active_admins()) <= 1:
        raise Conflict(f"Cannot {action} the last active admin.")


def _lock_active_admins() -> list[int]:
    """The active admins' ids, row-locked until commit (PostgreSQL), so two admins
    removing each other at once cannot both succeed."""
    stmt = select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True)).with_for_update()
    return list(db.session.scalars(stmt))

