"""job logs: every attempt's log, in pieces as the worker's reports carried them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 05:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('job_log_chunks',
    sa.Column('id', ID, nullable=False),
    sa.Column('job_id', ID, nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('start', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job_id', 'attempt', 'start', name='uq_job_log_chunks_start')
    )


def downgrade():
    op.drop_table('job_log_chunks')
