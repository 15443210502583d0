"""Why each queued job of a page waits (the job JSON's `waiting`), in a few grouped reads
per page, never one per row: the queues' settings, live counts per queue and per key,
starts in each rate window, and the types no live worker takes.

A hint, read after the fact: the claim itself decides (webapp.store.flow), and by the
time a page shows "concurrency" the slot may have freed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select, tuple_

from ..domain.queues import Waiting
from ..domain.statuses import LIVE, Status
from ..domain.timeutil import utcnow
from ..store.extensions import db
from ..store.flow import epoch_microseconds
from ..store.models import Job, Queue, QueueStart
from .workers import unserved_types


def waiting_reasons(page: Iterable[Job], now: datetime | None = None) -> dict[int, Waiting | None]:
    """Each job's reason to wait, by id; None for a job not queued or waiting for nothing."""
    now = now or utcnow()
    queued = [job for job in page if job.status == Status.QUEUED]
    reasons: dict[int, Waiting | None] = {job.id: None for job in page}
    if not queued:
        return reasons
    names = sorted({job.queue for job in queued})
    settings = {row.name: row for row in db.session.scalars(select(Queue).where(Queue.name.in_(names)))}
    live = _live_per_queue([name for name in names if _limits(settings.get(name))])
    keyed = sorted(
        {(job.queue, job.concurrency_key) for job in queued if job.concurrency_key and _keyed(settings.get(job.queue))}
    )
    live_per_key = _live_per_key(keyed)
    starts = _starts_in_window(
        [row for row in settings.values() if row.rate_limit_count is not None and row.rate_limit_period_s], now
    )
    unserved = set(unserved_types(now, float(current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"])))
    for job in queued:
        row = settings.get(job.queue)
        reasons[job.id] = _reason(job, row, live, live_per_key, starts, unserved, now)
    return reasons


def _reason(
    job: Job,
    row: Queue | None,
    live: dict[str, int],
    live_per_key: dict[tuple[str, str], int],
    starts: dict[str, int],
    unserved: set[str],
    now: datetime,
) -> Waiting | None:
    if row is not None and row.paused:
        return Waiting.QUEUE_PAUSED
    if job.run_after > now:
        return Waiting.RUN_AFTER
    if row is not None and row.concurrency is not None and live.get(job.queue, 0) >= row.concurrency:
        return Waiting.CONCURRENCY
    if (
        row is not None
        and row.key_concurrency is not None
        and job.concurrency_key
        and live_per_key.get((job.queue, job.concurrency_key), 0) >= row.key_concurrency
    ):
        return Waiting.KEY_CONCURRENCY
    if row is not None and row.rate_limit_count is not None and starts.get(job.queue, 0) >= row.rate_limit_count:
        return Waiting.RATE_LIMIT
    if job.type in unserved:
        return Waiting.NO_WORKER
    return None


def _limits(row: Queue | None) -> bool:
    return row is not None and row.concurrency is not None


def _keyed(row: Queue | None) -> bool:
    return row is not None and row.key_concurrency is not None


def _live_per_queue(names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    rows = db.session.execute(
        select(Job.queue, func.count()).where(Job.queue.in_(names), Job.status.in_(sorted(LIVE))).group_by(Job.queue)
    )
    return {queue: count for queue, count in rows}


def _live_per_key(keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    if not keys:
        return {}
    rows = db.session.execute(
        select(Job.queue, Job.concurrency_key, func.count())
        .where(tuple_(Job.queue, Job.concurrency_key).in_(keys), Job.status.in_(sorted(LIVE)))
        .group_by(Job.queue, Job.concurrency_key)
    )
    return {(queue, str(key)): count for queue, key, count in rows}


def _starts_in_window(rows: list[Queue], now: datetime) -> dict[str, int]:
    counts: dict[str, int] = {}
    now_us = epoch_microseconds(now)
    for row in rows:  # one per rate-limited queue on the page: a handful at most
        assert row.rate_limit_period_s is not None
        since = now_us - round(row.rate_limit_period_s * 1_000_000)
        counts[row.name] = db.session.execute(
            select(func.count()).where(QueueStart.queue == row.name, QueueStart.at_us > since)
        ).scalar_one()
    return counts


def with_waiting(data: dict[str, Any], reason: Waiting | None) -> dict[str, Any]:
    return {**data, "waiting": None if reason is None else str(reason)}
