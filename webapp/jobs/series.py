"""/stats over time: throughput, failure rate, queue latency p50/p95 and queue depth per
bucket, for all jobs, a type or a queue — and the data kept for them.

- `wait_rollups.roll_up_waits` (in `rollups.roll_up`'s transaction) counts each rolled-up hour's
  finished jobs per type, queue, status and wait bucket (`webapp.domain.wait_buckets`):
  throughput and failure rate are their sums, the percentiles are read from the buckets.
  The hours after the watermark are counted from the jobs table the same way.
- `sample_queue_depth` (each monitor pass, at most one row per minute and subject, by
  the store's primary key) records queued jobs per queue, per type and in all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, literal, select, union_all

from ..domain.statuses import FINISHED, Status
from ..domain.wait_buckets import quantile
from ..store.dialects import dialect_insert
from ..store.extensions import db
from ..store.flow import queued_queues
from ..store.models import Job, QueueSample, WaitRollup
from ..store.sql_time import MICROSECOND, epoch_us, microseconds
from ..store.status_sql import status_is
from .rollups import HOUR, rolled_up_to
from .wait_rollups import wait_bucket

ALL = "*"
TYPE_PREFIX = "type:"


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def sample_queue_depth(now: datetime, *, keep: timedelta) -> int:
    """Record this minute's queued jobs (per queue, `type:NAME` and `*`) once across replicas;
    drop samples older than `keep`. How many rows were written (0: this minute's were).

    The queued jobs are counted only while this minute has no sample (a look at the store's
    primary key), and in one read grouped by queue and type: during a backlog of 900,000 queued
    jobs a pass counted them three times (per queue, per type, in all) at every pass, 530 ms of
    the monitor's 550, where dead workers wait to be noticed."""
    at = _minute(now)
    sampled = select(QueueSample.at).where(QueueSample.at == at, QueueSample.subject == ALL)
    if db.session.execute(sampled).first() is not None:
        return 0
    depth: dict[str, tuple[int, datetime | None]] = {ALL: (0, None)}

    def add(subject: str, count: int, first: datetime | None) -> None:
        seen, oldest = depth.get(subject, (0, None))
        depth[subject] = (seen + count, min((t for t in (oldest, first) if t is not None), default=None))

    pairs = (
        select(Job.queue, Job.type, func.count(), func.min(Job.run_after))
        .where(status_is(Job.status, Status.QUEUED))
        .group_by(Job.queue, Job.type)
    )
    for queue, job_type, count, first in db.session.execute(pairs):
        for subject in (queue, TYPE_PREFIX + job_type, ALL):
            add(subject, count, first)
    values = [
        {
            "at": at,
            "subject": subject,
            "queued": count,
            "oldest_s": None if first is None else _waited(now, first),
        }
        for subject, (count, first) in depth.items()
    ]
    written = db.session.execute(
        dialect_insert(QueueSample)
        .values(values)
        .on_conflict_do_nothing(index_elements=["at", "subject"])
        .returning(QueueSample.subject)
    ).all()
    db.session.execute(delete(QueueSample).where(QueueSample.at < at - keep))
    return len(written)


def sampled_type_depths(job_types: Iterable[str]) -> dict[str, int]:
    """Each of `job_types`' queued jobs at the newest sample (this minute's once a pass took it):
    an exact count, where a pass's own count of a backlog stops at a cap."""
    subjects = [TYPE_PREFIX + name for name in job_types]
    if not subjects:
        return {}
    newest = select(func.max(QueueSample.at)).where(QueueSample.subject == ALL).scalar_subquery()
    rows = db.session.execute(
        select(QueueSample.subject, QueueSample.queued).where(
            QueueSample.at == newest, QueueSample.subject.in_(subjects)
        )
    )
    return {subject.removeprefix(TYPE_PREFIX): queued for subject, queued in rows}


@dataclass(frozen=True)
class Point:
    start: datetime
    completed: int
    failed: int
    failure_rate: float | None  # failed among completed and failed
    p50_s: float | None  # queue latency (ready → claimed) of the jobs finished in the bucket
    p95_s: float | None
    depth: int | None  # most jobs queued at one sample; None: no sample in the bucket


def _filters(model: Any, job_type: str | None, queue: str | None) -> list[Any]:
    conditions = []
    if job_type is not None:
        conditions.append(model.type == job_type)
    if queue is not None:
        conditions.append(model.queue == queue)
    return conditions


def _live_from(since: datetime, bucket: timedelta) -> datetime:
    """Where the jobs table takes over from the rollups (as `rollups` decides it)."""
    if bucket % HOUR or microseconds(since) % (HOUR // MICROSECOND):
        return since
    done = rolled_up_to()
    return max(since, done) if done else since


def series(
    since: datetime, bucket: timedelta, buckets: int, *, job_type: str | None = None, queue: str | None = None
) -> list[Point]:
    """`buckets` points from `since`, each `bucket` long (UTC)."""
    width = bucket // MICROSECOND
    live_from = _live_from(since, bucket)
    counts: dict[int, dict[str, dict[int, int]]] = {}  # slot → status → wait bucket → jobs

    live_slot = ((epoch_us(Job.finished_at) - microseconds(since)) // width).label("slot")
    wait = wait_bucket().label("bucket")
    reads = [
        select(live_slot, Job.status, wait, func.count())
        .where(Job.status.in_(sorted(FINISHED)), Job.finished_at >= live_from, *_filters(Job, job_type, queue))
        .group_by(live_slot, Job.status, wait)
    ]
    if live_from > since:
        r = WaitRollup
        slot = ((epoch_us(r.hour) - microseconds(since)) // width).label("slot")
        reads.append(
            select(slot, r.status, r.bucket, func.sum(r.jobs))
            .where(r.hour >= since, r.hour < live_from, *_filters(r, job_type, queue))
            .group_by(slot, r.status, r.bucket)
        )
    for read in reads:
        for slot, status, wait_index, n in db.session.execute(read):
            per_status = counts.setdefault(min(int(slot), buckets - 1), {})
            per_bucket = per_status.setdefault(status, {})
            per_bucket[int(wait_index)] = per_bucket.get(int(wait_index), 0) + int(n)

    subject = queue if queue is not None else (TYPE_PREFIX + job_type if job_type is not None else ALL)
    sample_slot = ((epoch_us(QueueSample.at) - microseconds(since)) // width).label("slot")
    sampled: dict[int, dict[str, int]] = {}
    for slot, sampled_subject, most in db.session.execute(
        select(sample_slot, QueueSample.subject, func.max(QueueSample.queued))
        .where(QueueSample.at >= since, QueueSample.subject.in_((subject, ALL)))
        .group_by(sample_slot, QueueSample.subject)
    ):
        sampled.setdefault(int(slot), {})[sampled_subject] = int(most)
    # A minute sampled (`*` is always written) without this subject had none of it queued.
    depth = {slot: rows.get(subject, 0) for slot, rows in sampled.items()}
    points = []
    for index in range(buckets):
        per_status = counts.get(index, {})
        completed = sum(per_status.get(Status.COMPLETED, {}).values())
        failed = sum(per_status.get(Status.FAILED, {}).values())
        waits: dict[int, int] = {}
        for per_bucket in per_status.values():
            for wait_index, n in per_bucket.items():
                waits[wait_index] = waits.get(wait_index, 0) + n
        ran = completed + failed
        points.append(
            Point(
                start=since + index * bucket,
                completed=completed,
                failed=failed,
                failure_rate=failed / ran if ran else None,
                p50_s=quantile(waits, 0.5),
                p95_s=quantile(waits, 0.95),
                depth=depth.get(index),
            )
        )
    return points


def finished_since(since: datetime) -> list[tuple[str, str, str, int, int]]:
    """Jobs finished since `since` per (type, queue, status, wait bucket): /metrics' figures."""
    bucket = wait_bucket().label("bucket")
    rows = db.session.execute(
        select(Job.type, Job.queue, Job.status, bucket, func.count())
        .where(Job.status.in_(sorted(FINISHED)), Job.finished_at >= since)
        .group_by(Job.type, Job.queue, Job.status, bucket)
    )
    return [(job_type, queue, status, int(index), int(n)) for job_type, queue, status, index, n in rows]


def queued_now(now: datetime) -> dict[str, tuple[int, float | None]]:
    """Per queue holding queued jobs: how many, and the oldest ready one's wait in seconds."""
    return queued_per_queue(_queued_queue_names(), now)


def _queued_queue_names() -> list[str]:
    """The queues holding queued jobs (`flow.queued_queues`: one index probe per queue)."""
    return [name for name in db.session.scalars(select(queued_queues().c.queue)) if name is not None]


def _ready_since(queue: str, now: datetime) -> Any:
    """Since when the queue's longest-waiting ready job has waited: the least `run_after` (its
    creation, or the end of a retry's backoff) of its queued jobs due by `now`, the first ready
    entry of its range of ix_jobs_queued_ready."""
    due = select(func.min(Job.run_after)).where(
        status_is(Job.status, Status.QUEUED), Job.queue == queue, Job.run_after <= now
    )
    return due.scalar_subquery()


def _waited(now: datetime, since: datetime) -> float:
    return max(0.0, (now - since).total_seconds())


def oldest_ready_waits(now: datetime) -> dict[str, float]:
    """Per queue holding ready jobs, how long its longest-waiting one has waited, in seconds:
    the queue_latency alert's measure, read as `queued_per_queue` reads it: one index probe
    per queue, where one GROUP BY over every queued job took 270 ms of each monitor pass at
    900,000 queued."""
    names = _queued_queue_names()
    if not names:
        return {}
    parts = [select(literal(name).label("queue"), _ready_since(name, now).label("since")) for name in names]
    rows = db.session.execute(union_all(*parts) if len(parts) > 1 else parts[0]).all()
    return {queue: _waited(now, since) for queue, since in rows if since is not None}


def queued_per_queue(
    names: Iterable[str], now: datetime, *, cap: int | None = None
) -> dict[str, tuple[int, float | None]]:
    """Per queue of `names`: its queued jobs (with a `cap`, counted up to cap + 1), and how long
    its longest-waiting ready job has waited, in seconds (`_ready_since`); None when none is
    ready. The one reading of a queue's depth and oldest wait: /queues, its API, /metrics and
    the queue_latency alert (`oldest_ready_waits`).

    Per queue, its queued jobs counted along its range of ix_jobs_queue_claim (with a cap, no
    further: a page's read, short whatever the backlog; without, /metrics' exact gauge). One
    GROUP BY over every queued job took 140-200 ms at 900,000 queued."""
    ordered = sorted(set(names))
    if not ordered:
        return {}
    queued = status_is(Job.status, Status.QUEUED)
    parts = []
    for name in ordered:
        jobs = select(Job.id).where(queued, Job.queue == name)
        if cap is not None:
            jobs = jobs.limit(cap + 1)
        count = select(func.count()).select_from(jobs.subquery()).scalar_subquery()
        parts.append(select(literal(name).label("queue"), count.label("queued"), _ready_since(name, now)))
    rows = db.session.execute(union_all(*parts) if len(parts) > 1 else parts[0]).all()
    return {queue: (int(n), None if since is None else _waited(now, since)) for queue, n, since in rows}
