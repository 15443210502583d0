"""flow control: named queues with limits and pause, rate-limit windows, unique jobs

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 02:30:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
UNIQUE_LIVE = "unique_key IS NOT NULL AND status IN ('claimed', 'pending', 'queued', 'running')"
QUEUED = "status = 'queued'"


def upgrade():
    # Plain ADD COLUMNs (a server default, nullable otherwise): no table rebuild on SQLite.
    # jobs.queue itself came with the schedules (0010).
    op.add_column('jobs', sa.Column('concurrency_key', sa.String(length=200), nullable=True))
    op.add_column('jobs', sa.Column('unique_key', sa.String(length=200), nullable=True))
    op.create_index('ix_jobs_queue_claim', 'jobs', ['queue', sa.text('priority DESC'), 'id'],
                    sqlite_where=sa.text(QUEUED), postgresql_where=sa.text(QUEUED))
    op.create_index('ix_jobs_queue_status_key', 'jobs', ['queue', 'status', 'concurrency_key'])
    op.create_index('uq_jobs_live_unique_key', 'jobs', ['type', 'unique_key'], unique=True,
                    sqlite_where=sa.text(UNIQUE_LIVE), postgresql_where=sa.text(UNIQUE_LIVE))
    op.create_index('ix_jobs_unique_finished', 'jobs', ['type', 'unique_key', 'finished_at'],
                    sqlite_where=sa.text('unique_key IS NOT NULL'),
                    postgresql_where=sa.text('unique_key IS NOT NULL'))
    op.create_table('queues',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=True),
    sa.Column('key_concurrency', sa.Integer(), nullable=True),
    sa.Column('rate_limit_count', sa.Integer(), nullable=True),
    sa.Column('rate_limit_period_s', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('concurrency IS NULL OR concurrency >= 0', name='ck_queues_concurrency'),
    sa.CheckConstraint('key_concurrency IS NULL OR key_concurrency >= 1', name='ck_queues_key_concurrency'),
    sa.CheckConstraint(
        '(rate_limit_count IS NULL) = (rate_limit_period_s IS NULL)'
        ' AND (rate_limit_count IS NULL OR (rate_limit_count >= 1 AND rate_limit_period_s > 0))',
        name='ck_queues_rate_limit'),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('queue_starts',
    sa.Column('id', ID, nullable=False),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('at_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_queue_starts_queue_at', 'queue_starts', ['queue', 'at_us'])
    op.create_table('queue_events',
    sa.Column('id', ID, nullable=False),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('data', JSON, nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_queue_events_queue', 'queue_events', ['queue', 'id'])


def downgrade():
    op.drop_index('ix_queue_events_queue', table_name='queue_events')
    op.drop_table('queue_events')
    op.drop_index('ix_queue_starts_queue_at', table_name='queue_starts')
    op.drop_table('queue_starts')
    op.drop_table('queues')
    op.drop_index('ix_jobs_unique_finished', table_name='jobs')
    op.drop_index('uq_jobs_live_unique_key', table_name='jobs')
    op.drop_index('ix_jobs_queue_status_key', table_name='jobs')
    op.drop_index('ix_jobs_queue_claim', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('unique_key')
        batch.drop_column('concurrency_key')
