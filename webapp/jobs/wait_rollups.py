"""The hourly rollup of finished jobs per type, queue, status and queue-latency bucket
(`webapp.domain.wait_buckets`), written with `rollups.roll_up`'s and read by `series`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Insert, case, delete, func, insert, select

from ..domain.statuses import FINISHED
from ..domain.wait_buckets import NEVER_CLAIMED, OVERFLOW, WAIT_BOUNDS_S
from ..store.extensions import db
from ..store.models import Job, WaitRollup
from ..store.sql_time import epoch_us, hour_of


def wait_bucket() -> ColumnElement[int]:
    """The job's wait (ready → claimed: `run_after` to its last claim) bucket, in SQL."""
    wait_us = epoch_us(Job.claimed_at) - epoch_us(Job.run_after)
    whens = [(wait_us <= int(bound * 1_000_000), index) for index, bound in enumerate(WAIT_BOUNDS_S)]
    return case((Job.claimed_at.is_(None), NEVER_CLAIMED), *whens, else_=OVERFLOW)


def roll_up_waits(start: datetime, end: datetime) -> None:
    """Count the hours [start, end) anew (the caller's transaction moves the watermark)."""
    db.session.execute(delete(WaitRollup).where(WaitRollup.hour >= start, WaitRollup.hour < end))
    db.session.execute(counted_hours(Job.finished_at >= start, Job.finished_at < end))


def counted_hours(*finished: ColumnElement[bool]) -> Insert:
    """The INSERT of the wait rollups of the finished jobs matching `finished` (whole hours:
    the roll-up's, and migration 0016's backfill of the hours rolled up before 0013)."""
    bucket = wait_bucket().label("bucket")
    hour = hour_of(Job.finished_at).label("hour")
    rows = (
        select(hour, Job.type, Job.queue, Job.status, bucket, func.count())
        .where(Job.status.in_(sorted(FINISHED)), *finished)
        .group_by(hour, Job.type, Job.queue, Job.status, bucket)
    )
    return insert(WaitRollup).from_select(["hour", "type", "queue", "status", "bucket", "jobs"], rows)
