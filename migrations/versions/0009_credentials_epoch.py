"""users.credentials_epoch: device tokens and guessing budgets end with the credentials

A password change, a completed reset and "log out everywhere" move the epoch on; device
tokens carry the epoch they were issued in, and the password-guessing budgets are counted
per epoch, so neither outlives the credentials it was earned with.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 05:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # Added in place: recreating `users` on SQLite would drop its triggers (migration 0005).
    op.add_column('users', sa.Column('credentials_epoch', sa.Integer(), server_default=sa.text('0'), nullable=False))


def downgrade():
    op.drop_column('users', 'credentials_epoch')
