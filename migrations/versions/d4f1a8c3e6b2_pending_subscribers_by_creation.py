"""an index on pending subscribers by creation time, for the purge of unconfirmed sign-ups

Revision ID: d4f1a8c3e6b2
Revises: b81d4e6f2c90
Create Date: 2026-12-07 04:55:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4f1a8c3e6b2'
down_revision = 'b81d4e6f2c90'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.create_index('ix_subscribers_pending_created', ['created_at', 'id'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))


def downgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index('ix_subscribers_pending_created', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
