"""follows: who follows whom, and per-user counters kept by triggers

`users.followers_count` and `users.following_count` change in the transaction of
every insert or delete on `follows` (including the cascade of a user's deletion),
so they are exact under concurrency and read with the user at no extra cost.
The counter columns are added in place: recreating `users` on SQLite would drop
its triggers (migration 0005).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

COUNTERS = ('followers_count', 'following_count')


def upgrade():
    op.create_table(
        'follows',
        sa.Column('follower_id', sa.Integer(), nullable=False),
        sa.Column('followed_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint('follower_id <> followed_id', name='ck_follows_not_self'),
        sa.ForeignKeyConstraint(['follower_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['followed_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('follower_id', 'followed_id'),
    )
    op.create_index('ix_follows_followed_id_created_at', 'follows',
                    ['followed_id', 'created_at', 'follower_id'], unique=False)
    op.create_index('ix_follows_follower_id_created_at', 'follows',
                    ['follower_id', 'created_at', 'followed_id'], unique=False)
    for column in COUNTERS:
        op.add_column('users', sa.Column(column, sa.Integer(), server_default=sa.text('0'), nullable=False))
    if op.get_bind().dialect.name == 'postgresql':
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def _upgrade_postgresql():
    # Per statement, from the transition table: a bulk insert (the seed's COPY) or a deletion's
    # cascade updates each user once. The users' rows are locked in id order first, so two
    # people following each other at the same moment cannot deadlock.
    op.execute("""
        CREATE FUNCTION count_follows() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
          sign int := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
        BEGIN
          PERFORM 1 FROM users
          WHERE id IN (SELECT follower_id FROM changed_rows UNION SELECT followed_id FROM changed_rows)
          ORDER BY id FOR NO KEY UPDATE;
          UPDATE users SET followers_count = users.followers_count + sign * c.followers,
                           following_count = users.following_count + sign * c.following
          FROM (
            SELECT id, sum(followers) AS followers, sum(following) AS following FROM (
              SELECT followed_id AS id, 1 AS followers, 0 AS following FROM changed_rows
              UNION ALL SELECT follower_id, 0, 1 FROM changed_rows) AS sides
            GROUP BY id
          ) AS c
          WHERE users.id = c.id;
          RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER follows_counted_on_insert AFTER INSERT ON follows
        REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_follows()
    """)
    op.execute("""
        CREATE TRIGGER follows_counted_on_delete AFTER DELETE ON follows
        REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_follows()
    """)


def _upgrade_sqlite():
    # SQLite runs one writer at a time: per-row triggers are exact, and cannot deadlock.
    op.execute("""
        CREATE TRIGGER follows_counted_on_insert AFTER INSERT ON follows BEGIN
          UPDATE users SET following_count = following_count + 1 WHERE id = new.follower_id;
          UPDATE users SET followers_count = followers_count + 1 WHERE id = new.followed_id;
        END
    """)
    op.execute("""
        CREATE TRIGGER follows_counted_on_delete AFTER DELETE ON follows BEGIN
          UPDATE users SET following_count = following_count - 1 WHERE id = old.follower_id;
          UPDATE users SET followers_count = followers_count - 1 WHERE id = old.followed_id;
        END
    """)


def downgrade():
    op.execute('DROP TRIGGER follows_counted_on_insert' + (' ON follows' if _pg() else ''))
    op.execute('DROP TRIGGER follows_counted_on_delete' + (' ON follows' if _pg() else ''))
    if _pg():
        op.execute('DROP FUNCTION count_follows()')
    for column in COUNTERS:
        op.drop_column('users', column)
    op.drop_index('ix_follows_follower_id_created_at', table_name='follows')
    op.drop_index('ix_follows_followed_id_created_at', table_name='follows')
    op.drop_table('follows')


def _pg():
    return op.get_bind().dialect.name == 'postgresql'
