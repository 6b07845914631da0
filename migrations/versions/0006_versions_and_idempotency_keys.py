"""row versions for conditional writes; idempotency keys for safe retries of creates

`users.version` and `posts.version` are checked in every ORM UPDATE and DELETE
(`UPDATE ... WHERE id = :id AND version = :v`), so a write based on a stale read fails
instead of overwriting. Added in place (server default 1): on SQLite, recreating
`users` or `posts` would drop their search and daily-count triggers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

VERSIONED = ('users', 'posts')


def upgrade():
    for table in VERSIONED:
        op.add_column(table, sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
    op.create_table(
        'idempotency_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(length=80), nullable=False),
        sa.Column('method', sa.String(length=10), nullable=False),
        sa.Column('path', sa.String(length=200), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('headers', sa.JSON(), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('scope', 'method', 'path', 'key', name='uq_idempotency_keys_request'),
    )
    op.create_index('ix_idempotency_keys_expires_at', 'idempotency_keys', ['expires_at'], unique=False)


def downgrade():
    op.drop_index('ix_idempotency_keys_expires_at', table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    for table in VERSIONED:
        # SQLite >= 3.35 drops a column in place (no table rebuild, triggers kept).
        op.drop_column(table, 'version')
