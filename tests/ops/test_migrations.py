"""The committed migrations produce exactly the models: no drift."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.extensions import db
from app.search import include_object


def test_migrated_schema_matches_the_models(app):
    # The session fixture built the schema with `flask db upgrade`, not create_all.
    with app.app_context(), db.engine.connect() as connection:
        opts = {"compare_type": True, "compare_server_default": True, "include_object": include_object}
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_database_is_at_the_latest_revision(app):
    from alembic.script import ScriptDirectory
    from flask_migrate import Config

    with app.app_context(), db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        config = Config(str(app.extensions["migrate"].directory) + "/alembic.ini")
        config.set_main_option("script_location", app.extensions["migrate"].directory)
        head = ScriptDirectory.from_config(config).get_current_head()
    assert current == head


def test_search_migration_indexes_and_counts_the_posts_an_existing_database_has(app, client):
    """Migration 0005 on a database with data: old posts are searchable and counted at once."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    from app.services import stats

    directory = app.extensions["migrate"].directory
    with app.app_context():
        downgrade(directory=directory, revision="0001")
        now = {"now": "2026-01-02 03:04:05"}
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO users (email, name, password_hash, role, is_active, created_at, updated_at) "
                "VALUES ('old@example.com', 'Old Timer', 'x', 'user', true, :now, :now)"), now)
            connection.execute(text(
                "INSERT INTO posts (author_id, title, body, created_at, updated_at) "
                "SELECT id, 'Written before search', 'about a zeppelin', :now, :now FROM users"), now)
        upgrade(directory=directory)
        numbers = stats.dashboard()
    response = client.get("/api/posts?q=zeppelin")
    assert [post["title"] for post in response.get_json()] == ["Written before search"]
    assert (numbers.users, numbers.posts) == (1, 1)


def test_rows_inserted_without_timestamps_get_them_from_the_database(app):
    """The migrated schema's server defaults work on this database (0001's `now()` did not on SQLite)."""
    from sqlalchemy import text

    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text("INSERT INTO users (email, name, password_hash) VALUES ('d@example.com', 'D', 'x')"))
        row = connection.execute(text("SELECT created_at, updated_at, role, is_active FROM users")).one()
        connection.execute(text("INSERT INTO posts (author_id, title, body) SELECT id, 't', 'b' FROM users"))
        post = connection.execute(text("SELECT created_at FROM posts")).one()
    assert row.created_at is not None and row.updated_at is not None and post.created_at is not None
    assert row.role == "user" and row.is_active in (True, 1)
