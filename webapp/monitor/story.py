"""What happened lately, for /health: the incident as an operator needs to see it.

The rest of the health report says what is stuck *now*. Right after a worker was
killed and the monitor settled its jobs nothing is stuck any more, yet an operator
must not read "Healthy": jobs were orphaned, a worker died, failures may be piling
up. Each source below reads one cheap, indexed thing and gives a note
(`kind`, `severity`, `count`, `text`, `ids`) or nothing; an `incident` note keeps the
page from saying healthy, an `info` note (a worker that stopped cleanly) is only shown.

Sources read:
- the orphaned attempts (ix_job_attempts_orphaned) for jobs orphaned by the monitor or by a
  server;
- workers by `last_seen_at` (ix_workers_last_seen) for those marked gone (died, or cut
  off: silent past their timeout, or their job was orphaned) and those that said
  goodbye on a graceful stop (state `stopped`);
- jobs by (status, finished_at) (ix_jobs_status_finished) for a failure spike.
Jobs still stopping (an ended attempt whose process may live on) are a source to add
to NOTE_SOURCES alongside these once the job carries that state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from ..domain.alerts import format_seconds
from ..domain.outcomes import Outcome
from ..domain.statuses import LIVE, Status
from ..domain.worker_states import WorkerState
from ..store.extensions import db
from ..store.models import Job, JobAttempt, Worker
from ..store.status_sql import outcome_is

# Worker.state as the monitor (and a worker's goodbye) set it, and how /health names each.
ALIVE, GONE, STOPPED = WorkerState.ALIVE, WorkerState.GONE, WorkerState.STOPPED

RECENT = timedelta(minutes=15)
FAILURE_SPIKE_MIN = 5  # failed jobs in the window before it can be a spike …
FAILURE_SPIKE_SHARE = 0.5  # … and at least this share of the jobs that finished in it

INCIDENT = "incident"
INFO = "info"

Note = dict[str, Any]


def _note(kind: str, severity: str, ids: list, text: str) -> Note:
    return {"kind": kind, "severity": severity, "count": len(ids), "ids": ids, "text": text}


def _minutes() -> str:
    return format_seconds(RECENT.total_seconds())  # "15 min", as the health page's heading says it


ORPHANS_SHOWN = 1000


def orphaned_note(since: datetime) -> Note | None:
    """The jobs orphaned since `since`, by the monitor's passes or by a server that saw a
    worker's connection drop (webapp.server.presence). Every orphaning ends the job's attempt as
    orphaned (webapp.jobs.reaping), so both are the attempts that ended so since: a range of
    ix_job_attempts_orphaned, which holds only them. (Read as the jobs changed since whose last
    error says so, it was every job changed in the window: 87 ms beside a backlog of 900,000.)"""
    ids = sorted(
        set(
            db.session.scalars(
                select(JobAttempt.job_id)
                .where(outcome_is(JobAttempt.outcome, Outcome.ORPHANED), JobAttempt.finished_at >= since)
                .order_by(JobAttempt.finished_at.desc())
                .limit(ORPHANS_SHOWN)
            )
        )
    )
    if not ids:
        return None
    return _note(
        "orphaned",
        INCIDENT,
        ids,
        f"{len(ids)} job{'s' if len(ids) != 1 else ''} orphaned in the last {_minutes()}: "
        "their worker died or stopped heartbeating (killed, frozen or cut off); each was re-queued or failed.",
    )


def _workers_in(state: str, since: datetime) -> list[str]:
    return list(
        db.session.scalars(
            select(Worker.id).where(Worker.last_seen_at >= since, Worker.state == state).order_by(Worker.id)
        )
    )


def died_note(since: datetime) -> Note | None:
    ids = _workers_in(GONE, since)
    if not ids:
        return None
    return _note(
        "worker_died",
        INCIDENT,
        ids,
        f"Worker{'s' if len(ids) != 1 else ''} {', '.join(ids)} died in the last {_minutes()} "
        "(fell silent without a goodbye).",
    )


def stopping_note(since: datetime) -> Note | None:
    """Jobs whose ended attempt may still live (webapp.store.leases): the job runs again only
    once its worker confirms the stop or the lease runs out. Such a job ended within the
    longest lease, so the read is a range of ix_jobs_updated, however large the store, taken
    in that index's order: in id order SQLite walked every job (230 ms at 1,000,000)."""
    now = since + RECENT
    longest = max(
        [current_app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"], *current_app.config["JOBWARDEN_TYPE_TIMEOUTS"].values()]
    )
    ids = sorted(
        db.session.scalars(
            select(Job.id)
            .where(
                Job.updated_at >= now - timedelta(seconds=longest),
                Job.lease_expires_at > now,
                Job.status.not_in(LIVE),
            )
            .order_by(Job.updated_at, Job.id)
            .limit(ORPHANS_SHOWN)
        )
    )
    if not ids:
        return None
    return _note(
        "stopping",
        INCIDENT,
        ids,
        f"{len(ids)} job{'s' if len(ids) != 1 else ''} stopping: an ended attempt may still be running until its "
        "worker confirms or its lease runs out; the job runs again only after that.",
    )


def stopped_note(since: datetime) -> Note | None:
    ids = _workers_in(STOPPED, since)
    if not ids:
        return None
    return _note(
        "worker_stopped",
        INFO,
        ids,
        f"Worker{'s' if len(ids) != 1 else ''} {', '.join(ids)} stopped cleanly in the last {_minutes()}.",
    )


def _finished(status: str, since: datetime) -> int:
    return (
        db.session.scalar(select(func.count()).select_from(Job).where(Job.status == status, Job.finished_at >= since))
        or 0
    )


def failure_spike_note(since: datetime) -> Note | None:
    failed = _finished(Status.FAILED, since)
    if failed < FAILURE_SPIKE_MIN:
        return None
    finished = failed + _finished(Status.COMPLETED, since)
    if failed < FAILURE_SPIKE_SHARE * finished:
        return None
    return {
        "kind": "failure_spike",
        "severity": INCIDENT,
        "count": failed,
        "ids": [],
        "text": f"{failed} of the {finished} jobs that finished in the last {_minutes()} failed.",
    }


NOTE_SOURCES: tuple[Callable[[datetime], Note | None], ...] = (
    orphaned_note,
    died_note,
    failure_spike_note,
    stopping_note,
    stopped_note,
)


def recent_story(now: datetime) -> dict[str, Any]:
    """The notes of the last RECENT, incidents first; `incident` when any is one."""
    since = now - RECENT
    notes = [note for source in NOTE_SOURCES if (note := source(since)) is not None]
    return {
        "window_s": int(RECENT.total_seconds()),
        "incident": any(note["severity"] == INCIDENT for note in notes),
        "notes": notes,
    }
