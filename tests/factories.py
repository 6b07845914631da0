"""Factories for the rows most tests start from: users, posts and follows.

Each is a fixture that returns a function. It creates through the services, as a request
would, and commits: the services only flush, and a test's set-up is its own unit of work.
conftest.py imports the fixtures, so every test can ask for them by name.

- `make_user(role, email=..., name=..., password=..., is_active=..., age=...)`: a `Person`
  with `id`, `email`, `password` and ready `headers` (a bearer access token).
- `make_post(author, title=..., body=..., at=...)`: the new post's id; `at` backdates it.
- `make_follow(follower, followed)`: `follower` follows `followed`.

`author`, `follower` and `followed` are a `Person` or a user id.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime

import pytest
from flask import Flask
from sqlalchemy import update

from app.extensions import db
from app.models import Post, Role
from app.services import follows, posts, tokens, users
from tests.helpers import PASSWORD, Person, bearer

_counter = itertools.count(1)


def _id(who: Person | int) -> int:
    return who if isinstance(who, int) else who.id


@pytest.fixture
def make_user(app: Flask) -> Callable[..., Person]:
    """Create a user (through the service) and sign them in."""

    def make(role: Role = Role.USER, *, email: str | None = None, name: str | None = None,
             password: str = PASSWORD, is_active: bool = True, age: int | None = None) -> Person:
        n = next(_counter)
        email = email or f"person{n}@example.com"
        with app.app_context():
            user = users.register(email=email, name=name or f"Person {n}", password=password,
                                  age=age, role=role)
            pair = tokens.start_session(user)
            user.is_active = is_active
            db.session.commit()
            person = Person(user.id, user.email, password, role, pair["access_token"],
                            pair["refresh_token"])
        person.headers = bearer(person.access_token)
        return person

    return make


@pytest.fixture
def make_post(app: Flask) -> Callable[..., int]:
    """Create a post (through the service); returns its id."""

    def make(author: Person | int, title: str = "Hello", body: str = "Some text", *,
             at: datetime | None = None) -> int:
        with app.app_context():
            post_id = posts.create_post(users.get_user(_id(author)), title=title, body=body).id
            if at is not None:  # created and last updated then
                db.session.execute(update(Post).where(Post.id == post_id).values(created_at=at, updated_at=at))
            db.session.commit()
        return post_id

    return make


@pytest.fixture
def make_follow(app: Flask) -> Callable[[Person | int, Person | int], None]:
    """`follower` follows `followed` (through the service)."""

    def make(follower: Person | int, followed: Person | int) -> None:
        with app.app_context():
            follows.follow(users.get_user(_id(follower)), _id(followed))
            db.session.commit()

    return make


@pytest.fixture
def user(make_user: Callable[..., Person]) -> Person:
    return make_user()


@pytest.fixture
def admin(make_user: Callable[..., Person]) -> Person:
    return make_user(Role.ADMIN)
