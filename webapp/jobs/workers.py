"""The registry of workers: each worker's heartbeat registers or refreshes its row."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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
) -> Worker:
    fields = dict(hostname=hostname, pid=pid, types=types, concurrency=concurrency)
    try:
        return _save_worker(worker_id, **fields)
    except IntegrityError:
        # Two first heartbeats of one worker raced to insert it: the loser updates instead.
        return _save_worker(worker_id, **fields)


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
