"""hourly rollups of finished jobs, for /stats over days

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 00:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('job_rollups',
    sa.Column('hour', sa.DateTime(), nullable=False),
    sa.Column('type', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('jobs', sa.BigInteger(), nullable=False),
    sa.Column('wait_us', sa.BigInteger(), nullable=True),
    sa.Column('waits', sa.BigInteger(), nullable=False),
    sa.Column('claimed_us', sa.BigInteger(), nullable=True),
    sa.Column('running_us', sa.BigInteger(), nullable=True),
    sa.Column('runs', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'type', 'status')
    )
    op.create_table('rollup_progress',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('rolled_up_to', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade():
    op.drop_table('rollup_progress')
    op.drop_table('job_rollups')
