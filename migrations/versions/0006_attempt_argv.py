"""attempts keep the argv a command job ran, for the job page

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 23:20:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('job_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('argv', JSON, nullable=True))


def downgrade():
    with op.batch_alter_table('job_attempts', schema=None) as batch_op:
        batch_op.drop_column('argv')
