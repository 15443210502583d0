"""Why each queued job of a page waits (the job JSON's `waiting`) and, where that is known,
until when (`waiting_until`: a full rate window's next free start, a retry's `run_after`), in
a few grouped reads per page, never one per row: the queues' settings, live counts per queue
and per key, starts in each rate window, and the types live workers take (the page's jobs of
other types wait for a worker; no read of the other queued jobs).

A hint, read after the fact: the claim itself decides (webapp.store.flow), and by the
time a page shows "concurrency" the slot may have freed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import func, select, tuple_

from ..domain.queues import Waiting
from ..domain.statuses import LIVE, Status
from ..domain.timeutil import isoformat, utcnow
from ..store.extensions import db
from ..store.flow import epoch_microseconds
from ..store.models import Job, Queue, QueueStart
from ..store.sql_time import EPOCH, MICROSECOND
from .workers import served_types


class Hold(NamedTuple):
    """What holds a queued job back, and when it lets go where that is known (None: not known
    ahead, e.g. a slot frees when another job finishes)."""

    reason: Waiting
    until: datetime | None = None


class RateWindow(NamedTuple):
    starts: int  # starts inside the window now
    opens_at: datetime | None  # when the window next has room, if it is full


def waiting_reasons(page: Iterable[Job], now: datetime | None = None) -> dict[int, Hold | None]:
    """Each job's hold, by id; None for a job not queued or waiting for nothing."""
    now = now or utcnow()
    queued = [job for job in page if job.status == Status.QUEUED]
    reasons: dict[int, Hold | None] = {job.id: None for job in page}
    if not queued:
        return reasons
    names = sorted({job.queue for job in queued})
    settings = {row.name: row for row in db.session.scalars(select(Queue).where(Queue.name.in_(names)))}
    live = _live_per_queue([name for name in names if _limits(settings.get(name))])
    keyed = sorted(
        {(job.queue, job.concurrency_key) for job in queued if job.concurrency_key and _keyed(settings.get(job.queue))}
    )
    live_per_key = _live_per_key(keyed)
    windows = _rate_windows(
        [row for row in settings.values() if row.rate_limit_count is not None and row.rate_limit_period_s], now
    )
    served = served_types(now, float(current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"]))
    for job in queued:
        row = settings.get(job.queue)
        reasons[job.id] = _reason(job, row, live, live_per_key, windows, served, now)
    return reasons


def _reason(
    job: Job,
    row: Queue | None,
    live: dict[str, int],
    live_per_key: dict[tuple[str, str], int],
    windows: dict[str, RateWindow],
    served: set[str] | None,
    now: datetime,
) -> Hold | None:
    if row is not None and row.paused:
        return Hold(Waiting.QUEUE_PAUSED)
    if job.run_after > now:
        return Hold(Waiting.RUN_AFTER, job.run_after)
    if row is not None and row.concurrency is not None and live.get(job.queue, 0) >= row.concurrency:
        return Hold(Waiting.CONCURRENCY)
    if (
        row is not None
        and row.key_concurrency is not None
        and job.concurrency_key
        and live_per_key.get((job.queue, job.concurrency_key), 0) >= row.key_concurrency
    ):
        return Hold(Waiting.KEY_CONCURRENCY)
    window = windows.get(job.queue)
    if window is not None and window.opens_at is not None:
        return Hold(Waiting.RATE_LIMIT, window.opens_at)
    if served is not None and job.type not in served:
        return Hold(Waiting.NO_WORKER)
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


def _rate_windows(rows: list[Queue], now: datetime) -> dict[str, RateWindow]:
    """Each rate-limited queue's starts in its window and, when they fill it, the moment the
    oldest start that keeps it full leaves it (the claim's own rule: `limit` starts in any
    window of `period_s`)."""
    windows: dict[str, RateWindow] = {}
    now_us = epoch_microseconds(now)
    for row in rows:  # one per rate-limited queue on the page: a handful at most
        assert row.rate_limit_period_s is not None and row.rate_limit_count is not None
        period_us = round(row.rate_limit_period_s * 1_000_000)
        in_window = (QueueStart.queue == row.name, QueueStart.at_us > now_us - period_us)
        starts = db.session.execute(select(func.count()).where(*in_window)).scalar_one()
        opens_at = None
        if starts >= row.rate_limit_count:
            leaving = db.session.execute(
                select(QueueStart.at_us)
                .where(*in_window)
                .order_by(QueueStart.at_us)
                .offset(starts - row.rate_limit_count)
                .limit(1)
            ).scalar_one()
            opens_at = EPOCH + (leaving + period_us) * MICROSECOND
        windows[row.name] = RateWindow(starts, opens_at)
    return windows


def with_waiting(data: dict[str, Any], hold: Hold | None) -> dict[str, Any]:
    return {
        **data,
        "waiting": None if hold is None else str(hold.reason),
        "waiting_until": None if hold is None else isoformat(hold.until),
    }
