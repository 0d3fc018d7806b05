"""a widget may ask for the reader's first name

Revision ID: e2b9f4c61a7d
Revises: c7e1d2a9b4f0
Create Date: 2026-12-06 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e2b9f4c61a7d'
down_revision = 'c7e1d2a9b4f0'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('widgets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ask_first_name', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('widgets', schema=None) as batch_op:
        batch_op.drop_column('ask_first_name')
