"""The registry of workers: each worker's heartbeat registers or refreshes its row, and its
answer says whether the worker is taken for gone. A worker frozen (SIGSTOP, a paused VM) or cut
off past the heartbeat timeout is marked gone and its jobs orphaned; thawed, it beats again, but
a heartbeat never revives it (`_save_worker`). Told so, it presents itself again at once
(webapp.server.presence), rather than when its held presence request happens to be answered."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, case, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..domain.timeutil import utcnow
from ..domain.worker_states import WorkerState
from ..store.extensions import db
from ..store.leases import shortest_lease_seconds
from ..store.models import Worker
from ..store.transaction import unit_of_work
from .queries import uncovered_queued_types


def register_worker(
    worker_id: str,
    *,
    hostname: str | None = None,
    pid: int | None = None,
    types: list[str] | None = None,
    concurrency: int | None = None,
) -> bool:
    """Register the worker, or refresh its row: at once when something about it changed, else
    once its row is `refresh_s()` old, together with every worker this process heard from
    whose row is past half of that. An idle worker heartbeats every second; writing each
    would cost the database one transaction per worker per second, and refreshing each on
    its own one per worker per refresh period. Grouped, a server process writes about twice
    per refresh period however many workers it serves.

    True when its row is gone. A worker back from a silence that may have got it taken for
    gone (`_silence_s`) reads its row, as a gone worker does at each heartbeat (it is not
    remembered as written): the row says it, not what this process wrote before."""
    fields = dict(hostname=hostname, pid=pid, types=types, concurrency=concurrency)
    registry = _registry()
    now = time.monotonic()
    heard_at = utcnow()
    with registry.lock:
        heard_before = registry.heard.get(worker_id)
        registry.heard[worker_id] = heard_at
        last = registry.written.get(worker_id)
    back_from_silence = heard_before is not None and (heard_at - heard_before).total_seconds() > _silence_s()
    if last is not None and last[0] == fields:
        if now - last[1] < refresh_s() and not back_from_silence:
            return False
        if worker_id in _refresh_rows(registry, now):
            return False
    try:
        gone = _save_worker(worker_id, **fields)
    except IntegrityError:
        # Two first heartbeats of one worker raced to insert it: the loser updates instead.
        gone = _save_worker(worker_id, **fields)
    with registry.lock:
        if gone:
            registry.written.pop(worker_id, None)
            registry.heard.pop(worker_id, None)
        else:
            registry.written[worker_id] = (fields, now)
            # A refresh in another thread may have forgotten this worker while its row was
            # saved (it read the worker as silent before this heartbeat was heard): what is
            # written is always heard, or every later refresh failed on it.
            registry.heard[worker_id] = max(heard_at, registry.heard.get(worker_id, heard_at))
    return gone


@dataclass
class _Registry:
    """What this server process last wrote for each worker (fields, monotonic time), and
    when it last heard from each (UTC); the server's threads share it."""

    written: dict[str, tuple[dict[str, Any], float]] = field(default_factory=dict)
    heard: dict[str, datetime] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _refresh_rows(registry: _Registry, now: float) -> set[str]:
    """One UPDATE for every alive row written more than half a refresh period ago whose worker
    was heard from within a refresh period, each set to when it was last heard (never later,
    so a silent worker's row ages from its last heartbeat). Workers left out, or whose row is
    gone or no longer alive, are forgotten: their next heartbeat registers them again."""
    silent_since = utcnow() - timedelta(seconds=refresh_s())
    with registry.lock:
        due = {
            key: registry.heard[key]
            for key, (_, at) in registry.written.items()
            if now - at >= refresh_s() / 2 and registry.heard[key] >= silent_since
        }
    refreshed: set[str] = set()
    if due:
        with unit_of_work():
            refreshed = set(
                db.session.scalars(
                    update(Worker)
                    .where(Worker.id.in_(sorted(due)))
                    .values(
                        last_seen_at=case(
                            {key: literal(at, Worker.last_seen_at.type) for key, at in due.items()},
                            value=Worker.id,
                        ),
                    )
                    .where(Worker.state == WorkerState.ALIVE)
                    .returning(Worker.id)
                    .execution_options(synchronize_session=False)
                )
            )
    with registry.lock:
        for key, (fields, at) in list(registry.written.items()):
            if key in refreshed:
                registry.written[key] = (fields, now)
            elif now - at >= refresh_s() / 2:
                del registry.written[key]
                registry.heard.pop(key, None)
    return refreshed


def _silence_s() -> float:
    """A heartbeat this much later than the one before reads its row: the monitor takes a
    worker for gone once a job of the type with the shortest timeout goes silent that long
    (webapp.monitor.settle), which can come before this process's row is due a refresh.
    Longer silences under the default timeout alone leave the row due anyway."""
    return shortest_lease_seconds() / 2


def refresh_s() -> float:
    """How stale this process lets a live worker's `last_seen_at` get (plus one heartbeat):
    a quarter of the heartbeat timeout, so the health report (late past half of it) and the
    monitor (gone past all of it) see a heartbeating worker as alive."""
    return float(current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"]) / 4


def _registry() -> _Registry:
    """This process's registry bookkeeping, per app."""
    return current_app.extensions.setdefault("jobwarden.worker_registry", _Registry())


def _save_worker(worker_id: str, **fields: Any) -> bool:
    """Insert the worker alive, or update its row; True when the row is gone. A heartbeat never
    brings a gone worker back: one sent just before its worker was killed can be answered after
    the death was recorded (webapp.server.presence). Its presence request, held open only by a
    live process, says that it lives again (`presence.revive`). A stopped worker said goodbye and
    beats no more, so a heartbeat under its id is a new process."""
    now = utcnow()
    with unit_of_work():
        worker = db.session.get(Worker, worker_id)
        if worker is None:
            worker = Worker(id=worker_id, started_at=now, state=WorkerState.ALIVE)
            db.session.add(worker)
        for name, value in fields.items():
            setattr(worker, name, value)
        gone = worker.state == WorkerState.GONE
        if not gone:
            worker.last_seen_at = now
            worker.state = WorkerState.ALIVE
    return gone


def unserved_types(now: datetime, worker_timeout_s: float, *, left_within_s: float = 0.0) -> list[str]:
    """Types of queued jobs that no live worker (heard from within the timeout) takes, nor one
    that left within `left_within_s`: they wait until one does."""
    served = served_types(now, worker_timeout_s, left_within_s=left_within_s)
    return [] if served is None else uncovered_queued_types(served)


def served_types(now: datetime, worker_timeout_s: float, *, left_within_s: float = 0.0) -> set[str] | None:
    """The types live workers (heard from within the timeout) take, and those of workers that
    stopped or died within `left_within_s`; None: every type (such a worker that names no
    types takes any)."""
    live = and_(Worker.state == WorkerState.ALIVE, Worker.last_seen_at >= now - timedelta(seconds=worker_timeout_s))
    serving = or_(live, Worker.last_seen_at >= now - timedelta(seconds=left_within_s)) if left_within_s > 0 else live
    live_types = db.session.scalars(select(Worker.types).where(serving)).all()
    if any(not types for types in live_types):
        return None
    return {t for types in live_types for t in types}
