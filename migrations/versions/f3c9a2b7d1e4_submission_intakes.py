"""accepted submissions are kept as one intake row each and stored by the worker

Revision ID: f3c9a2b7d1e4
Revises: d4a1c8e7f3b2
Create Date: 2026-12-07 07:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f3c9a2b7d1e4'
down_revision = 'd4a1c8e7f3b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('intakes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('widget_id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intakes'))
    )


def downgrade():
    # Submissions accepted but not stored yet would be lost: store them first (`leadcapture worker --once`).
    bind = op.get_bind()
    waiting = bind.execute(sa.text("SELECT count(*) FROM intakes WHERE failed_at IS NULL")).scalar_one()
    if waiting:
        raise RuntimeError(
            f"{waiting} accepted submissions are not stored yet: run `leadcapture worker --once` first"
        )
    op.drop_table('intakes')
