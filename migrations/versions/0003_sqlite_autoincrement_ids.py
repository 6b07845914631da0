"""ids are never reused on SQLite: users and posts become AUTOINCREMENT

Without AUTOINCREMENT SQLite hands the largest deleted rowid to the next row, so a
deleted user's tokens would sign in as the next new user. PostgreSQL's sequences
never go back: nothing to do there.

Their timestamps default to CURRENT_TIMESTAMP there (0001's `now()` is PostgreSQL's only).

The three tables are rebuilt children first: dropping `users` while `posts` and
`revoked_tokens` still point at it would cascade-delete their rows, and
`PRAGMA foreign_keys=OFF` is a no-op inside the migration's transaction.

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None

CHILDREN_FIRST = ('revoked_tokens', 'posts', 'users')


def upgrade():
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild(autoincrement=True)


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild(autoincrement=False)


def _rebuild(autoincrement: bool) -> None:
    columns = {}
    for table in CHILDREN_FIRST:
        columns[table] = [row[1] for row in op.get_bind().exec_driver_sql(f'PRAGMA table_info("{table}")')]
        op.execute(f'CREATE TABLE "_old_{table}" AS SELECT * FROM "{table}"')
    for table in CHILDREN_FIRST:
        op.drop_table(table)  # its indexes go with it
    _create_tables(autoincrement)
    for table in reversed(CHILDREN_FIRST):  # parents first: the foreign keys hold throughout
        names = ', '.join(f'"{name}"' for name in columns[table])
        op.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM "_old_{table}"')
        op.execute(f'DROP TABLE "_old_{table}"')


def _create_tables(autoincrement: bool) -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('age', sa.Integer(), nullable=True),
    sa.Column('password_hash', sa.String(length=60), nullable=False),
    sa.Column('role', sa.Enum('user', 'admin', name='user_role', native_enum=False, create_constraint=True, length=10), server_default='user', nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('age IS NULL OR (age >= 18 AND age <= 120)', name='ck_users_age_range'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email'),
    sqlite_autoincrement=autoincrement,
    )
    op.create_table('posts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=autoincrement,
    )
    op.create_index('ix_posts_author_id_created_at_id', 'posts', ['author_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_posts_created_at_id', 'posts', ['created_at', 'id'], unique=False)
    op.create_table('revoked_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('token_type', sa.String(length=10), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('jti')
    )
    op.create_index('ix_revoked_tokens_expires_at', 'revoked_tokens', ['expires_at'], unique=False)
    op.create_index('ix_revoked_tokens_user_id', 'revoked_tokens', ['user_id'], unique=False)
