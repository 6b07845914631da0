"""Helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import Post
from app.services import posts, users
from tests.conftest import Person


def write_post(app: Flask, author_id: int, title: str, body: str = "Body", *, at: datetime | None = None) -> int:
    """Create a post through the service; `at` backdates it (created and updated then)."""
    with app.app_context():
        post_id = posts.create_post(users.get_user(author_id), title=title, body=body).id
        if at is not None:
            db.session.execute(update(Post).where(Post.id == post_id).values(created_at=at, updated_at=at))
            db.session.commit()
    return post_id


def follow(client: FlaskClient, who: Person, whom_id: int, method: str = "PUT") -> TestResponse:
    """`who` follows (PUT) or unfollows (DELETE) user `whom_id` through the API."""
    return client.open(f"/api/users/{whom_id}/follow", method=method, headers=who.headers)
