"""drop the content version: list pages are tagged by their own rows

Migration 0008's counter moved with every write to posts, users or follows, and every list
page's ETag with it: any write anywhere (another user's password change included) changed
every page's tag, so a client could watch private activity through 304 and 200. A page's tag
is now made of its own items' ids and versions (app/api/conditional.py), so the triggers,
their function and the table go. The downgrade puts back what 0008 made.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 06:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = ('posts', 'users', 'follows')
SHARDS = 16


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f'DROP TRIGGER IF EXISTS {table}_bump_content_version ON {table}')
            op.execute(f'DROP TRIGGER IF EXISTS {table}_truncate_bumps_content_version ON {table}')
        op.execute('DROP FUNCTION IF EXISTS bump_content_version()')
    else:
        for table in TABLES:
            for event in ('insert', 'update', 'delete'):
                op.execute(f'DROP TRIGGER IF EXISTS {table}_{event}_bumps_content_version')
    op.drop_table('content_versions')


def downgrade():
    op.create_table(
        'content_versions',
        sa.Column('shard', sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column('version', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.PrimaryKeyConstraint('shard'),
    )
    if op.get_bind().dialect.name == 'postgresql':
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
    else:
        op.execute("INSERT INTO content_versions (shard) VALUES (0)")
        for table in TABLES:
            for event in ('INSERT', 'UPDATE', 'DELETE'):
                op.execute(f"""
                    CREATE TRIGGER {table}_{event.lower()}_bumps_content_version AFTER {event} ON {table} BEGIN
                      UPDATE content_versions SET version = version + 1;
                    END
                """)
