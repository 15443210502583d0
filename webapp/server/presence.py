"""A worker's death seen in seconds: each worker keeps one request open (`presence`, a
long poll it sends again as soon as it is answered), and the server watches that
request's socket (webapp.server.hangups). When it drops — the kernel closes a killed process's
sockets at once — the worker is dead unless it said goodbye first (`goodbye`, the last
thing a worker stopping cleanly does). Its live jobs are then orphaned at once, on
whichever replica held the connection, rather than after the heartbeat timeout and the
monitor's next pass.

Orphaned is not runnable elsewhere yet: a command's supervisor outlives its worker
(it kills the command within the orphan grace of seeing the worker die, or when the
lease runs out if it cannot), and the server cannot see it. So the orphaned attempt
keeps its lease (webapp.store.leases): the job shows `stopping` and the claim skips it until
the lease runs out. A frozen worker keeps its connection open and is not seen here:
its jobs fall to the heartbeat timeout, as a silent network partition does.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..domain.statuses import LIVE, JobNotFound, TransitionRefused
from ..domain.timeutil import utcnow
from ..domain.worker_states import WorkerState
from ..jobs.reaping import orphan_job_of_dead_worker
from ..store.extensions import db
from ..store.models import Job, Worker
from ..store.transaction import rows_changed, unit_of_work
from . import hangups, held_requests
from .claim_wait import client_gone, client_socket

log = logging.getLogger(__name__)

ALIVE, DEAD, STOPPED = WorkerState.ALIVE, WorkerState.GONE, WorkerState.STOPPED


def hold(worker_id: str, wait_s: float) -> bool:
    """Hold the worker's presence request up to `wait_s`, or until this server process stops;
    True when its connection dropped without a goodbye (it died), after its jobs were orphaned."""
    sock = client_socket()
    dropped = threading.Event()
    revive(worker_id)
    db.session.close()  # wait without a database connection
    with hangups.watching(sock, dropped.set), held_requests.released_at_stop(dropped.set):
        dropped.wait(wait_s)
    if not dropped.is_set() or not client_gone():
        return False
    return declare_dead(worker_id) is not None


def revive(worker_id: str) -> bool:
    """A worker taken for gone (its connection dropped, or it fell silent) holds its presence
    again: it lives. Heartbeats never say so (webapp.jobs.workers): one sent just before its
    worker was killed can be answered after the death. A killed worker's presence request,
    if one was still in flight, finds its socket closed and is declared dead again at once.
    Read first, so a live worker's presence costs no write."""
    state = db.session.scalar(select(Worker.state).where(Worker.id == worker_id))
    db.session.rollback()
    if state != DEAD:
        return False
    with unit_of_work():
        revived = rows_changed(
            db.session.execute(
                update(Worker)
                .where(Worker.id == worker_id, Worker.state == DEAD)
                .values(state=ALIVE, last_seen_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        )
    if revived:
        log.warning("worker %s: taken for gone, it holds its presence again; alive", worker_id)
    return bool(revived)


def declare_dead(worker_id: str) -> list[int] | None:
    """Mark the worker gone and orphan its live jobs; None when it had said goodbye (or was
    already gone): one statement decides, so two replicas never both orphan."""
    with unit_of_work():
        died = _mark_gone(worker_id)
    if not died:
        return None  # it said goodbye, or another replica declared it dead
    live = list(db.session.scalars(select(Job.id).where(Job.worker_id == worker_id, Job.status.in_(LIVE))))
    orphaned = []
    for job_id in live:
        try:
            orphan_job_of_dead_worker(job_id, worker_id)
        except (TransitionRefused, JobNotFound):
            continue  # it moved on meanwhile (a late report, an operator)
        orphaned.append(job_id)
    log.warning("worker %s: its connection dropped without a goodbye; orphaned jobs %s", worker_id, orphaned)
    return orphaned


def _mark_gone(worker_id: str) -> int:
    """An alive row becomes gone; no row at all (killed before its first registration
    landed) becomes a gone row of its own. One upsert, not an UPDATE then an INSERT: a first
    heartbeat inserting the row between the two (uncommitted when the UPDATE looked) made the
    INSERT find it and do nothing, and the dead worker stayed alive with its jobs running.
    Counted by the rows it returns: its row count is -1 on PostgreSQL (psycopg, through
    SQLAlchemy), and every drop of an already gone worker counted as a death."""
    now = utcnow()
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(Worker).values(id=worker_id, started_at=now, last_seen_at=now, state=DEAD)
    upsert = statement.on_conflict_do_update(
        index_elements=[Worker.id], set_={"state": DEAD}, where=Worker.state == ALIVE
    ).returning(Worker.id)
    return len(db.session.execute(upsert).all())


def say_goodbye(worker_id: str) -> None:
    """The worker stops cleanly: the drop of its presence that follows is not a death."""
    with unit_of_work():
        db.session.execute(
            update(Worker)
            .where(Worker.id == worker_id)
            .values(state=STOPPED, last_seen_at=utcnow())  # heard from last now: no_worker's grace counts from it
            .execution_options(synchronize_session=False)
        )
