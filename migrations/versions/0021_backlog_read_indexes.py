"""the queued jobs' types and the orphaned attempts, each by an index of its own

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 05:00:00

Two reads of /health, the job pages and the job lists grew with a backlog: at 900,000 queued
jobs each took 70-155 ms, in every poll of every open page, while the operator looked at the
incident.
- ix_jobs_queued_type: the queued jobs by `type`, in claim order within each (priority DESC,
  id). Which types no live worker takes is one probe per type (a loose index scan; SELECT
  DISTINCT read every queued job), and a claim of one type reads its own range (SQLite walked
  the claim order past every queued job of the other types).
- ix_job_attempts_orphaned: `finished_at` of the orphaned attempts. The recent orphans were
  found among every job updated in the last 15 minutes.

Built CONCURRENTLY on PostgreSQL, outside the migration's transaction, as 0020 builds its
index. A build left invalid by an interrupted run is dropped first.
"""
from contextlib import nullcontext

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_jobs_queued_type', 'jobs', ['type', sa.text('priority DESC'), 'id'], sa.text("status = 'queued'")),
    ('ix_job_attempts_orphaned', 'job_attempts', ['finished_at'], sa.text("outcome = 'orphaned'")),
)


def upgrade():
    if not _concurrently():
        for name, table, columns, where in INDEXES:
            op.create_index(name, table, columns, sqlite_where=where)
        return
    with op.get_context().autocommit_block():
        for name, table, columns, where in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
            op.create_index(name, table, columns, postgresql_where=where, postgresql_concurrently=True)


def downgrade():
    context = op.get_context().autocommit_block() if _concurrently() else nullcontext()
    with context:
        for name, table, _, _ in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=_concurrently(), if_exists=_concurrently())


def _concurrently():
    return op.get_context().dialect.name == 'postgresql'
