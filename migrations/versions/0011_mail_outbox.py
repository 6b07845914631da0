"""the mail outbox and the upkeep schedule

A request that sends mail adds a row to `mail_outbox` in its own transaction; `flask worker`
delivers it (app/worker.py). `scheduled_jobs` holds when each periodic upkeep job is next due;
a worker runs a job while it holds its row's lock, so one worker at a time runs it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 07:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'mail_outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.String(length=255), nullable=False),
        sa.Column('recipient', sa.String(length=320), nullable=False),
        sa.Column('template', sa.String(length=64), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('body_text', sa.Text(), nullable=True),
        sa.Column('body_html', sa.Text(), nullable=True),
        sa.Column('status', sa.Enum('waiting', 'sent', 'failed', name='mail_status', native_enum=False,
                                    create_constraint=True, length=10),
                  server_default='waiting', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('trace_context', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('message_id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_mail_outbox_due', 'mail_outbox', ['status', 'next_attempt_at'], unique=False)
    op.create_index('ix_mail_outbox_sent_at', 'mail_outbox', ['sent_at'], unique=False)
    op.create_table(
        'scheduled_jobs',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('next_run_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_result', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade():
    op.drop_table('scheduled_jobs')
    op.drop_index('ix_mail_outbox_sent_at', table_name='mail_outbox')
    op.drop_index('ix_mail_outbox_due', table_name='mail_outbox')
    op.drop_table('mail_outbox')
