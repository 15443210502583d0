"""page indexes: the jobs table sorted by creation time reads an index, not the table

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-06 05:20:00

"""
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    # /jobs?sort=created_at (the table's "Created" header): a keyset page in (created_at, id) order.
    op.create_index('ix_jobs_created_id', 'jobs', ['created_at', 'id'])


def downgrade():
    op.drop_index('ix_jobs_created_id', table_name='jobs')
