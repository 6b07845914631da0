"""Users: registration, sign-in checks, who may see and change what."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select

from app.errors import AuthenticationFailed, Conflict, NotFound, PermissionDenied, ValidationFailed
from app.extensions import db
from app.models import Role, User, is_possible_id
from app.pagination import Page, PageRequest, page_of
from app.security import hash_password, verify_password
from app.services import Precondition, commit, no_precondition

ADMIN_ONLY_FIELDS = frozenset({"role", "is_active"})
SORT_KEY = (int,)  # id, ascending


EMAIL_TAKEN = "An account with this email already exists."


def register(*, email: str, name: str, password: str, age: int | None = None,
             role: Role = Role.USER) -> User:
    user = User(email=email, name=name, age=age, role=role, password_hash=hash_password(password))
    db.session.add(user)
    commit(EMAIL_TAKEN)
    return user


def authenticate(email: str, password: str) -> User:
    """The active user with these credentials; one identical failure for every wrong case."""
    user = find_by_email(email)
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or not user.is_active:
        raise AuthenticationFailed("Invalid email or password.")
    return user


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id) if is_possible_id(user_id) else None
    if user is None:
        raise NotFound("User not found.")
    return user


def list_users(page: PageRequest, *, search: str | None = None, role: Role | None = None,
               is_active: bool | None = None) -> Page[User]:
    """Users by id, keyset-paginated; the filters serve the admin pages."""
    stmt = select(User).order_by(User.id).limit(page.limit + 1)
    if search:
        stmt = stmt.where(or_(User.email.icontains(search, autoescape=True),
                              User.name.icontains(search, autoescape=True)))
    if role is not None:
        stmt = stmt.where(User.role == role)
    if is_active is not None:
        stmt = stmt.where(User.is_active.is_(is_active))
    if page.after is not None:
        stmt = stmt.where(User.id > page.after[0])
    elif page.skip:
        stmt = stmt.offset(page.skip)
    return page_of(list(db.session.scalars(stmt)), page.limit, lambda user: (user.id,))


def can_see_account(viewer: User | None, user: User) -> bool:
    """Whether `viewer` sees all of `user` (email, age, role, status) or only the public profile."""
    return viewer is not None and (viewer.is_admin or viewer.id == user.id)


def can_edit(actor: User, user: User) -> bool:
    return actor.is_admin or actor.id == user.id


def update_user(actor: User, user: User, changes: Mapping[str, Any],
                precondition: Precondition = no_precondition) -> User:
    """Apply a partial update, enforcing who may change which fields."""
    if not can_edit(actor, user):
        raise PermissionDenied("You may only change your own account.")
    precondition(user)
    forbidden = sorted(ADMIN_ONLY_FIELDS & changes.keys())
    if forbidden and not actor.is_admin:
        raise PermissionDenied(f"Only an admin may change {', '.join(forbidden)}.")
    if "current_password" in changes and "password" not in changes:
        raise ValidationFailed(errors={"current_password": ["Only needed to change the password."]})
    if "password" in changes and not actor.is_admin:
        current = changes.get("current_password")
        if current is None:
            raise ValidationFailed(errors={"current_password": ["Required to change the password."]})
        if not verify_password(current, user.password_hash):
            raise ValidationFailed(errors={"current_password": ["Incorrect password."]})
    if "role" in changes and changes["role"] != user.role:
        _guard_admin_removal(actor, user, "change the role of")
    if "is_active" in changes and not changes["is_active"] and user.is_active:
        _guard_admin_removal(actor, user, "deactivate")

    for field in ("email", "name", "age", "role", "is_active"):
        if field in changes:
            setattr(user, field, changes[field])
    if "password" in changes:
        user.password_hash = hash_password(changes["password"])
    commit(EMAIL_TAKEN)
    return user


def set_role(actor: User, user: User, role: Role, precondition: Precondition = no_precondition) -> User:
    return update_user(actor, user, {"role": role}, precondition)


def set_active(actor: User, user: User, is_active: bool, precondition: Precondition = no_precondition) -> User:
    return update_user(actor, user, {"is_active": is_active}, precondition)


def delete_user(actor: User, user: User, precondition: Precondition = no_precondition) -> None:
    if not actor.is_admin:
        raise PermissionDenied("Only an admin may delete users.")
    precondition(user)
    _guard_admin_removal(actor, user, "delete")
    db.session.delete(user)
    commit()


def _guard_admin_removal(actor: User, user: User, action: str) -> None:
    """An admin may not remove themself, and the last active admin must stay."""
    if actor.id == user.id and actor.is_admin:
        raise Conflict(f"You cannot {action} your own account.")
    if user.is_admin and user.is_active and len(_lock_active_admins()) <= 1:
        raise Conflict(f"Cannot {action} the last active admin.")


def _lock_active_admins() -> list[int]:
    """The active admins' ids, row-locked until commit (PostgreSQL), so two admins
    removing each other at once cannot both succeed."""
    stmt = select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True)).with_for_update()
    return list(db.session.scalars(stmt))

