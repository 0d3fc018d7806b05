"""a report has a file per locale, or one for every locale

Revision ID: a3f7c2e91d05
Revises: e2b9f4c61a7d
Create Date: 2026-12-07 10:00:00.000000

Each report's single file becomes its one file for every locale (locale NULL). Downgrading keeps the first
file each report lists; the files it has for other locales are dropped.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a3f7c2e91d05'
down_revision = 'e2b9f4c61a7d'
branch_labels = None
depends_on = None

FILE_COLUMNS = ('filename', 'content_type', 'size', 'sha256', 'data')


def upgrade():
    op.create_table('report_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_report_files_report_id_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_files')),
    sa.UniqueConstraint('report_id', 'locale', name=op.f('uq_report_files_report_id'))
    )
    op.execute(
        'INSERT INTO report_files (report_id, locale, position, filename, content_type, size, sha256, data) '
        'SELECT id, NULL, 0, filename, content_type, size, sha256, data FROM reports'
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        for column in FILE_COLUMNS:
            batch_op.drop_column(column)


def downgrade():
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('filename', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('content_type', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('size', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('data', sa.LargeBinary(), nullable=True))
    for column in FILE_COLUMNS:
        op.execute(
            f'UPDATE reports SET {column} = (SELECT report_files.{column} FROM report_files '
            'WHERE report_files.report_id = reports.id ORDER BY report_files.position LIMIT 1)'
        )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.alter_column('filename', existing_type=sa.String(length=255), nullable=False)
        batch_op.alter_column('content_type', existing_type=sa.String(length=100), nullable=False)
        batch_op.alter_column('size', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('sha256', existing_type=sa.String(length=64), nullable=False)

    op.drop_table('report_files')
