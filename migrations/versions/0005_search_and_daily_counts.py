"""full-text search over posts; daily counts for the dashboard

PostgreSQL: a stored `tsvector` of title and body (lower-cased and unaccented,
the 'simple' configuration: no stemming), with a GIN index.
SQLite: an external-content FTS5 table kept in step by triggers.
Both: `daily_counts`, rows and posts per UTC day, maintained by triggers in the
transaction of the write, so the dashboard never counts whole tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

COUNTED = ('users', 'posts')


def upgrade():
    op.create_table(
        'daily_counts',
        sa.Column('subject', sa.String(length=20), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('subject', 'day'),
    )
    op.create_index('ix_users_admins', 'users', ['id'], unique=False,
                    postgresql_where=sa.text("role = 'admin'"), sqlite_where=sa.text("role = 'admin'"))
    op.create_index('ix_users_inactive', 'users', ['id'], unique=False,
                    postgresql_where=sa.text('NOT is_active'), sqlite_where=sa.text('NOT is_active'))
    op.create_index('ix_users_created_at', 'users', ['created_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def _upgrade_postgresql():
    op.execute('CREATE EXTENSION IF NOT EXISTS unaccent')
    # unaccent() is only STABLE (its dictionary could change); a generated column needs
    # IMMUTABLE, so pin the dictionary, as PostgreSQL's documentation suggests.
    op.execute("""
        CREATE FUNCTION immutable_unaccent(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$
    """)
    # PostgreSQL's parser reads `<b>`, `a@b.io`, `x.org/y` and `3.14` as single tokens (tags are
    # dropped); blanking those characters leaves runs of letters and digits, as FTS5 sees them.
    separators = '<>@/:.&=?#%~+'
    op.execute(f"""
        ALTER TABLE posts ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
            to_tsvector('simple', immutable_unaccent(
                translate(title || ' ' || body, '{separators}', '{" " * len(separators)}')))
        ) STORED
    """)
    op.execute('CREATE INDEX ix_posts_search_vector ON posts USING gin (search_vector)')

    op.execute("""
        CREATE FUNCTION count_rows_by_day() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'INSERT' THEN
            INSERT INTO daily_counts (subject, day, count)
            SELECT TG_ARGV[0], (created_at AT TIME ZONE 'UTC')::date AS day, count(*)
            FROM new_rows GROUP BY 2 ORDER BY 2
            ON CONFLICT (subject, day) DO UPDATE SET count = daily_counts.count + EXCLUDED.count;
          ELSE
            INSERT INTO daily_counts (subject, day, count)
            SELECT TG_ARGV[0], (created_at AT TIME ZONE 'UTC')::date AS day, -count(*)
            FROM old_rows GROUP BY 2 ORDER BY 2
            ON CONFLICT (subject, day) DO UPDATE SET count = daily_counts.count + EXCLUDED.count;
          END IF;
          RETURN NULL;
        END $$
    """)
    # A changed creation time (backdating, imports) moves the row to its new day.
    op.execute("""
        CREATE FUNCTION recount_row_by_day() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
          old_day date := (OLD.created_at AT TIME ZONE 'UTC')::date;
          new_day date := (NEW.created_at AT TIME ZONE 'UTC')::date;
        BEGIN
          IF old_day <> new_day THEN
            INSERT INTO daily_counts (subject, day, count) VALUES (TG_ARGV[0], old_day, -1)
            ON CONFLICT (subject, day) DO UPDATE SET count = daily_counts.count - 1;
            INSERT INTO daily_counts (subject, day, count) VALUES (TG_ARGV[0], new_day, 1)
            ON CONFLICT (subject, day) DO UPDATE SET count = daily_counts.count + 1;
          END IF;
          RETURN NULL;
        END $$
    """)
    for table in COUNTED:
        op.execute(f"""
            CREATE TRIGGER {table}_counted_on_insert AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
            EXECUTE FUNCTION count_rows_by_day('{table}')
        """)
        op.execute(f"""
            CREATE TRIGGER {table}_counted_on_delete AFTER DELETE ON {table}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
            EXECUTE FUNCTION count_rows_by_day('{table}')
        """)
        op.execute(f"""
            CREATE TRIGGER {table}_counted_on_backdate AFTER UPDATE OF created_at ON {table}
            FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at)
            EXECUTE FUNCTION recount_row_by_day('{table}')
        """)
        op.execute(f"""
            INSERT INTO daily_counts (subject, day, count)
            SELECT '{table}', (created_at AT TIME ZONE 'UTC')::date, count(*) FROM {table} GROUP BY 2
        """)


# Recreating a table on SQLite drops its triggers: a later migration that recreates `users`
# or `posts` there must create their triggers again.


def _upgrade_sqlite():
    op.execute("""
        CREATE VIRTUAL TABLE posts_fts USING fts5(
            title, body, content='posts', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
        )
    """)
    op.execute("""
        CREATE TRIGGER posts_fts_on_insert AFTER INSERT ON posts BEGIN
          INSERT INTO posts_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
        END
    """)
    op.execute("""
        CREATE TRIGGER posts_fts_on_delete AFTER DELETE ON posts BEGIN
          INSERT INTO posts_fts (posts_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
        END
    """)
    op.execute("""
        CREATE TRIGGER posts_fts_on_update AFTER UPDATE OF title, body ON posts BEGIN
          INSERT INTO posts_fts (posts_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
          INSERT INTO posts_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
        END
    """)
    op.execute("INSERT INTO posts_fts (posts_fts) VALUES ('rebuild')")
    for table in COUNTED:
        op.execute(f"""
            CREATE TRIGGER {table}_counted_on_insert AFTER INSERT ON {table} BEGIN
              INSERT INTO daily_counts (subject, day, count) VALUES ('{table}', date(new.created_at), 1)
              ON CONFLICT (subject, day) DO UPDATE SET count = count + 1;
            END
        """)
        op.execute(f"""
            CREATE TRIGGER {table}_counted_on_delete AFTER DELETE ON {table} BEGIN
              INSERT INTO daily_counts (subject, day, count) VALUES ('{table}', date(old.created_at), -1)
              ON CONFLICT (subject, day) DO UPDATE SET count = count - 1;
            END
        """)
        op.execute(f"""
            CREATE TRIGGER {table}_counted_on_backdate AFTER UPDATE OF created_at ON {table}
            WHEN old.created_at IS NOT new.created_at BEGIN
              INSERT INTO daily_counts (subject, day, count) VALUES ('{table}', date(old.created_at), -1)
              ON CONFLICT (subject, day) DO UPDATE SET count = count - 1;
              INSERT INTO daily_counts (subject, day, count) VALUES ('{table}', date(new.created_at), 1)
              ON CONFLICT (subject, day) DO UPDATE SET count = count + 1;
            END
        """)
        op.execute(f"""
            INSERT INTO daily_counts (subject, day, count)
            SELECT '{table}', date(created_at), count(*) FROM {table} GROUP BY 2
        """)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table in COUNTED:
            op.execute(f'DROP TRIGGER {table}_counted_on_insert ON {table}')
            op.execute(f'DROP TRIGGER {table}_counted_on_delete ON {table}')
            op.execute(f'DROP TRIGGER {table}_counted_on_backdate ON {table}')
        op.execute('DROP FUNCTION count_rows_by_day()')
        op.execute('DROP FUNCTION recount_row_by_day()')
        op.execute('DROP INDEX ix_posts_search_vector')
        op.execute('ALTER TABLE posts DROP COLUMN search_vector')
        op.execute('DROP FUNCTION immutable_unaccent(text)')
    else:
        for table in COUNTED:
            op.execute(f'DROP TRIGGER {table}_counted_on_insert')
            op.execute(f'DROP TRIGGER {table}_counted_on_delete')
            op.execute(f'DROP TRIGGER {table}_counted_on_backdate')
        for suffix in ('insert', 'delete', 'update'):
            op.execute(f'DROP TRIGGER posts_fts_on_{suffix}')
        op.execute('DROP TABLE posts_fts')
    op.drop_index('ix_users_created_at', table_name='users')
    op.drop_index('ix_users_inactive', table_name='users')
    op.drop_index('ix_users_admins', table_name='users')
    op.drop_table('daily_counts')
