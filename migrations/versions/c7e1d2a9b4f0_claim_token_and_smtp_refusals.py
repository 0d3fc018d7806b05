"""claim token and smtp refusals

Revision ID: c7e1d2a9b4f0
Revises: 5c2e9a7d41b3
Create Date: 2026-12-05 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c7e1d2a9b4f0'
down_revision = '5c2e9a7d41b3'
branch_labels = None
depends_on = None

OLD_SOURCES = ('dsn', 'arf', 'webhook')
NEW_SOURCES = (*OLD_SOURCES, 'smtp')


def _source(values):
    return sa.Enum(*values, name='bounce_source', native_enum=False, create_constraint=True, length=20)


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
    # The CHECK constraint lists the allowed sources: it is replaced, on SQLite by copying the table.
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.alter_column('source', existing_type=_source(OLD_SOURCES), type_=_source(NEW_SOURCES),
                              existing_nullable=False)


def downgrade():
    op.execute("DELETE FROM bounce_events WHERE source = 'smtp'")
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.alter_column('source', existing_type=_source(NEW_SOURCES), type_=_source(OLD_SOURCES),
                              existing_nullable=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('claim_token')
