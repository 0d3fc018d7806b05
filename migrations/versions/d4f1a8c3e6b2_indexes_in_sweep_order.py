"""indexes in the order the sweeps read: pending subscribers by creation time, due rows with their id

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

ACTIVE = sa.text("state = 'active'")
PENDING = sa.text("status = 'pending'")


def upgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index('ix_subscribers_refresh_due_at')
        batch_op.create_index('ix_subscribers_refresh_due', ['refresh_due_at', 'id'], unique=False)
        batch_op.create_index('ix_subscribers_pending_created', ['created_at', 'id'], unique=False, postgresql_where=PENDING, sqlite_where=PENDING)
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollments_due', postgresql_where=ACTIVE, sqlite_where=ACTIVE)
        batch_op.create_index('ix_enrollments_due', ['next_due_at', 'id'], unique=False, postgresql_where=ACTIVE, sqlite_where=ACTIVE)
        batch_op.drop_index('ix_enrollments_recheck_at')
        batch_op.create_index('ix_enrollments_recheck', ['recheck_at', 'id'], unique=False, postgresql_where=ACTIVE, sqlite_where=ACTIVE)


def downgrade():
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollments_recheck', postgresql_where=ACTIVE, sqlite_where=ACTIVE)
        batch_op.create_index('ix_enrollments_recheck_at', ['recheck_at'], unique=False)
        batch_op.drop_index('ix_enrollments_due', postgresql_where=ACTIVE, sqlite_where=ACTIVE)
        batch_op.create_index('ix_enrollments_due', ['next_due_at'], unique=False, postgresql_where=ACTIVE, sqlite_where=ACTIVE)
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index('ix_subscribers_pending_created', postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.create_index('ix_subscribers_refresh_due_at', ['refresh_due_at'], unique=False)
        batch_op.drop_index('ix_subscribers_refresh_due')
