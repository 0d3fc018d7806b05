"""bounce events

Revision ID: 5c2e9a7d41b3
Revises: 8908dd802a56
Create Date: 2026-12-04 15:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c2e9a7d41b3'
down_revision = '8908dd802a56'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('bounce_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.Enum('hard', 'soft', 'complaint', 'delayed', name='bounce_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('status_code', sa.String(length=16), nullable=True),
    sa.Column('diagnostic', sa.Text(), nullable=True),
    sa.Column('source', sa.Enum('dsn', 'arf', 'webhook', name='bounce_source', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_key', sa.String(length=96), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_bounce_events_delivery_id_deliveries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_bounce_events_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bounce_events')),
    sa.UniqueConstraint('event_key', name=op.f('uq_bounce_events_event_key'))
    )
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bounce_events_delivery_id'), ['delivery_id'], unique=False)
        batch_op.create_index('ix_bounce_events_subscriber_received', ['subscriber_id', 'received_at'], unique=False)


def downgrade():
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.drop_index('ix_bounce_events_subscriber_received')
        batch_op.drop_index(batch_op.f('ix_bounce_events_delivery_id'))

    op.drop_table('bounce_events')
