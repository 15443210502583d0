"""alert hysteresis and the wait rollups of the hours rolled up before 0013

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 08:00:00

- alerts.clear_since: while an alert fires, since when its value has been below the
  threshold; it resolves once that lasts JOBWARDEN_ALERT_RESOLVE_AFTER_S.
- job_wait_rollups began with 0013, so the hours rolled up before it had no rows there
  (the /stats series and the failure-rate rules read them). They are counted now from
  the jobs table, in one INSERT … SELECT over the finished jobs before the first hour
  0013's roll-up wrote (or before the watermark if it wrote none). Jobs pruned before
  this upgrade are gone: their hours keep their per-type counts in job_rollups only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('alerts', sa.Column('clear_since', sa.DateTime(), nullable=True))
    _backfill_wait_rollups()


def _backfill_wait_rollups():
    from webapp.jobs.wait_rollups import counted_hours
    from webapp.store.models import Job, RollupProgress, WaitRollup

    bind = op.get_bind()
    watermark = bind.execute(sa.select(RollupProgress.rolled_up_to).where(RollupProgress.id == 1)).scalar()
    if watermark is None:
        return  # nothing rolled up yet: the roll-up counts every hour itself
    first = bind.execute(sa.select(sa.func.min(WaitRollup.hour))).scalar()
    bind.execute(counted_hours(Job.finished_at < (first or watermark)))


def downgrade():
    op.drop_column('alerts', 'clear_since')
