"""the queued jobs with an earlier attempt's lease, by its end

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 03:00:00

- ix_jobs_queued_leases: `lease_expires_at` of the queued jobs that have one (a job requeued
  while its earlier attempt was stopping). A waiting claim asks when the next queued job
  becomes claimable; without this index that read went through every queued job
  (webapp/store/next_claimable.py).

Built CONCURRENTLY on PostgreSQL, outside the migration's transaction, as 0017 builds its
indexes: a plain CREATE INDEX would hold every create, claim and report on `jobs` for the
build. A build left invalid by an interrupted run is dropped first.
"""
from contextlib import nullcontext

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

NAME = 'ix_jobs_queued_leases'
QUEUED_LEASED = sa.text("status = 'queued' AND lease_expires_at IS NOT NULL")


def upgrade():
    if not _concurrently():
        op.create_index(NAME, 'jobs', ['lease_expires_at'], sqlite_where=QUEUED_LEASED)
        return
    with op.get_context().autocommit_block():
        op.drop_index(NAME, table_name='jobs', postgresql_concurrently=True, if_exists=True)
        op.create_index(
            NAME, 'jobs', ['lease_expires_at'], postgresql_where=QUEUED_LEASED, postgresql_concurrently=True
        )


def downgrade():
    context = op.get_context().autocommit_block() if _concurrently() else nullcontext()
    with context:
        op.drop_index(NAME, table_name='jobs', postgresql_concurrently=_concurrently(), if_exists=_concurrently())


def _concurrently():
    return op.get_context().dialect.name == 'postgresql'
