"""live jobs index: a limited claim counts its queue's and keys' live jobs from an index of live jobs only

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 11:10:00

The limited claim (webapp/store/flow.py) counts, while it holds its queue, the queue's
live jobs and each key's. ix_jobs_queue_status_key read every entry of the queue (its
queued jobs too) when the planner had no statistics of the table; this index holds only
the claimed and running jobs.
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

LIVE_WHERE = "status IN ('claimed', 'running')"


def upgrade():
    op.create_index(
        'ix_jobs_live_queue_key',
        'jobs',
        ['queue', 'concurrency_key'],
        sqlite_where=sa.text(LIVE_WHERE),
        postgresql_where=sa.text(LIVE_WHERE),
    )


def downgrade():
    op.drop_index('ix_jobs_live_queue_key', table_name='jobs')
