"""content versions: a counter that every change to what the lists show moves

A list page's ETag is its content version with the request that made it
(app/api/conditional.py), so a `304` for a current page reads one small row set instead
of the page. Every write to `posts`, `users` or `follows` bumps the version in the
writing transaction, by trigger, whoever writes (API, admin pages, CLI, plain SQL).

PostgreSQL: deferred constraint triggers bump at commit, after every other lock the
transaction takes, so the counter cannot take part in a deadlock; the counter is
split into 16 rows (one per connection, by backend pid) so that concurrent commits
rarely wait for each other, and read as their sum. A transaction bumps once, however
many rows it changes. SQLite writes one transaction at a time: one row.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 15:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

TABLES = ('posts', 'users', 'follows')
SHARDS = 16


def upgrade():
    op.create_table(
        'content_versions',
        sa.Column('shard', sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column('version', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.PrimaryKeyConstraint('shard'),
    )
    if op.get_bind().dialect.name == 'postgresql':
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def _upgrade_postgresql():
    op.execute(f"INSERT INTO content_versions (shard) SELECT generate_series(0, {SHARDS - 1})")
    op.execute(f"""
        CREATE FUNCTION bump_content_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF current_setting('app.content_version_bumped', true) IS DISTINCT FROM txid_current()::text THEN
            UPDATE content_versions SET version = version + 1 WHERE shard = pg_backend_pid() % {SHARDS};
            PERFORM set_config('app.content_version_bumped', txid_current()::text, true);
          END IF;
          RETURN NULL;
        END $$
    """)
    for table in TABLES:
        op.execute(f"""
            CREATE CONSTRAINT TRIGGER {table}_bump_content_version AFTER INSERT OR UPDATE OR DELETE ON {table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_content_version()
        """)
        op.execute(f"""
            CREATE TRIGGER {table}_truncate_bumps_content_version AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION bump_content_version()
        """)


def _upgrade_sqlite():
    op.execute("INSERT INTO content_versions (shard) VALUES (0)")
    for table in TABLES:
        for event in ('INSERT', 'UPDATE', 'DELETE'):
            op.execute(f"""
                CREATE TRIGGER {table}_{event.lower()}_bumps_content_version AFTER {event} ON {table} BEGIN
                  UPDATE content_versions SET version = version + 1;
                END
            """)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f'DROP TRIGGER {table}_bump_content_version ON {table}')
            op.execute(f'DROP TRIGGER {table}_truncate_bumps_content_version ON {table}')
        op.execute('DROP FUNCTION bump_content_version()')
    else:
        for table in TABLES:
            for event in ('insert', 'update', 'delete'):
                op.execute(f'DROP TRIGGER {table}_{event}_bumps_content_version')
    op.drop_table('content_versions')
