"""jobs keep when their lease runs out: a job whose ended attempt may still be live is not claimable

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 01:45:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
