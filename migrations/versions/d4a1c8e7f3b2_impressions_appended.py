"""impressions are appended one row each and folded into the daily tallies by the worker

Revision ID: d4a1c8e7f3b2
Revises: d4f1a8c3e6b2
Create Date: 2026-12-07 05:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4a1c8e7f3b2'
down_revision = 'd4f1a8c3e6b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('impressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('widget_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_impressions'))
    )


def downgrade():
    # The counts not folded yet go to the daily tallies first. "WHERE true" lets SQLite tell the upsert's ON
    # from a join's.
    op.execute(
        "INSERT INTO widget_impressions (widget_id, day, count)"
        " SELECT impressions.widget_id, impressions.day, count(*) FROM impressions"
        " JOIN widgets ON widgets.id = impressions.widget_id WHERE true"
        " GROUP BY impressions.widget_id, impressions.day"
        " ON CONFLICT (widget_id, day) DO UPDATE SET count = widget_impressions.count + excluded.count"
    )
    op.drop_table('impressions')
