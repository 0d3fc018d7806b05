"""questions, reports, widgets and sequences carry a version, raised by every change

Revision ID: b81d4e6f2c90
Revises: a3f7c2e91d05
Create Date: 2026-12-07 03:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b81d4e6f2c90'
down_revision = 'a3f7c2e91d05'
branch_labels = None
depends_on = None

TABLES = ('questions', 'reports', 'widgets', 'sequences')


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('version')
