"""The registry of workers: each worker's heartbeat registers or refreshes its row."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Worker
from ..timeutil import utcnow
from .queries import uncovered_queued_types
from .transaction import unit_of_work


def register_worker(
    worker_id: str,
    *,
    hostname: str | None = None,
    pid: int | None = None,
    types: list[str] | None = None,
    concurrency: int | None = None,
) -> None:
    """Register the worker, or refresh its row: at once when something about it changed, else
    at most once per `refresh_s()` from this server process. An idle worker heartbeats every
    second; writing each would cost the database one transaction per worker per second."""
    fields = dict(hostname=hostname, pid=pid, types=types, concurrency=concurrency)
    written = _writes()
    last = written.get(worker_id)
    now = time.monotonic()
    if last is not None and last[0] == fields and now - last[1] < refresh_s():
        return
    try:
        _save_worker(worker_id, **fields)
    except IntegrityError:
        # Two first heartbeats of one worker raced to insert it: the loser updates instead.
        _save_worker(worker_id, **fields)
    for stale in [key for key, (_, at) in written.items() if now - at >= refresh_s()]:
        written.pop(stale, None)
    written[worker_id] = (fields, now)


def refresh_s() -> float:
    """How stale this process lets a live worker's `last_seen_at` get (plus one heartbeat):
    a quarter of the heartbeat timeout, so the health report (late past half of it) and the
    monitor (gone past all of it) see a heartbeating worker as alive."""
    return float(current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"]) / 4


def _writes() -> dict[str, tuple[dict[str, Any], float]]:
    """What this process last wrote for each worker, and when (monotonic), per app."""
    return current_app.extensions.setdefault("jobwarden.worker_writes", {})


def _save_worker(worker_id: str, **fields: Any) -> Worker:
    now = utcnow()
    with unit_of_work():
        worker = db.session.get(Worker, worker_id)
        if worker is None:
            worker = Worker(id=worker_id, started_at=now)
            db.session.add(worker)
        for name, value in fields.items():
            setattr(worker, name, value)
        worker.last_seen_at = now
        worker.state = "alive"
    return worker


def unserved_types(now: datetime, worker_timeout_s: float) -> list[str]:
    """Types of queued jobs that no live worker (heard from within the timeout) takes:
    they wait until one does. A live worker that names no types takes any type."""
    live_types = db.session.scalars(
        select(Worker.types).where(
            Worker.state == "alive", Worker.last_seen_at >= now - timedelta(seconds=worker_timeout_s)
        )
    ).all()
    if any(not types for types in live_types):
        return []
    return uncovered_queued_types({t for types in live_types for t in types})
