"""topics, tracked links and clicks, interest events and scores

Revision ID: 0f5b21d686fc
Revises: f3c9a2b7d1e4
Create Date: 2026-12-07 19:55:38.925393

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0f5b21d686fc'
down_revision = 'f3c9a2b7d1e4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sweep_marks',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('after_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sweep_marks'))
    )
    op.create_table('topics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('urls', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('half_life_days', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], name=op.f('fk_topics_question_id_questions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topics')),
    sa.UniqueConstraint('key', name=op.f('uq_topics_key'))
    )
    op.create_table('interest_scores',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_interest_scores_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], name=op.f('fk_interest_scores_topic_id_topics'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'topic_id', name=op.f('pk_interest_scores'))
    )
    with op.batch_alter_table('interest_scores', schema=None) as batch_op:
        batch_op.create_index('ix_interest_scores_topic_level', ['topic_id', 'level'], unique=False)

    op.create_table('clicks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=True),
    sa.Column('clicked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('automated', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_clicks_delivery_id_deliveries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_clicks_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], name=op.f('fk_clicks_topic_id_topics'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clicks'))
    )
    with op.batch_alter_table('clicks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clicks_clicked_at'), ['clicked_at'], unique=False)
        batch_op.create_index('ix_clicks_delivery_clicked', ['delivery_id', 'clicked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_clicks_subscriber_id'), ['subscriber_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_clicks_topic_id'), ['topic_id'], unique=False)

    op.create_table('interest_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.Enum('answer', 'click', 'read', name='signal_source', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=True),
    sa.Column('click_id', sa.Integer(), nullable=True),
    sa.Column('widget_id', sa.Integer(), nullable=True),
    sa.Column('url', sa.String(length=2048), nullable=True),
    sa.ForeignKeyConstraint(['click_id'], ['clicks.id'], name=op.f('fk_interest_events_click_id_clicks'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_interest_events_delivery_id_deliveries'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_interest_events_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], name=op.f('fk_interest_events_topic_id_topics'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['widget_id'], ['widgets.id'], name=op.f('fk_interest_events_widget_id_widgets'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interest_events'))
    )
    with op.batch_alter_table('interest_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_interest_events_click_id'), ['click_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_interest_events_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index('ix_interest_events_subscriber_topic', ['subscriber_id', 'topic_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_interest_events_topic_id'), ['topic_id'], unique=False)

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('links', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))



def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('links')

    with op.batch_alter_table('interest_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_interest_events_topic_id'))
        batch_op.drop_index('ix_interest_events_subscriber_topic')
        batch_op.drop_index(batch_op.f('ix_interest_events_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_interest_events_click_id'))

    op.drop_table('interest_events')
    with op.batch_alter_table('clicks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clicks_topic_id'))
        batch_op.drop_index(batch_op.f('ix_clicks_subscriber_id'))
        batch_op.drop_index('ix_clicks_delivery_clicked')
        batch_op.drop_index(batch_op.f('ix_clicks_clicked_at'))

    op.drop_table('clicks')
    with op.batch_alter_table('interest_scores', schema=None) as batch_op:
        batch_op.drop_index('ix_interest_scores_topic_level')

    op.drop_table('interest_scores')
    op.drop_table('topics')
    op.drop_table('sweep_marks')
