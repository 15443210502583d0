"""One monitor pass: settle what is stuck, roll up finished hours, prune what is old, record the pass."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete

from .. import jobs
from ..domain.statuses import JobNotFound, Status, TransitionRefused
from ..domain.timeutil import isoformat, utcnow
from ..metrics import ORPHANS_REAPED
from ..store.extensions import db
from ..store.locks import one_at_a_time
from ..store.models import Job, MonitorPass
from ..store.transaction import unit_of_work
from ..webhooks.alerts import raise_alerts
from ..webhooks.outbox import prune as prune_notifications
from .alerting import alert_settings, evaluate
from .scans import (
    PRUNED_STATUSES,
    cancelled_scan,
    classify_live,
    live_scan,
    orphan_reason,
    pending_reason,
    pending_scan,
    retention_scan,
    unstarted_overdue,
    unstarted_reason,
    unstarted_scan,
    worker_scan,
)
from .settings import monitor_settings

log = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key shared by every Jobwarden replica ("JOBWARDN" in ASCII).
LOCK_KEY = 0x4A4F4257_41524B4E & 0x7FFFFFFFFFFFFFFF
PASSES_KEPT = 1000


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_pass(*, trigger: str = "schedule", now: datetime | None = None) -> dict[str, Any]:
    """One monitor pass: settle what is stuck, prune what is old, record the pass.

    Returns the ids changed per kind (and where orphaned or stale jobs ended
    up), the late jobs seen, and the timing; `{"skipped": True}` when another
    replica's pass holds the lock.
    """
    clock = time.perf_counter()
    started_at = utcnow()
    now = now or started_at
    settings = monitor_settings()
    with one_at_a_time(LOCK_KEY) as ours:
        if not ours:
            return {"skipped": True, "trigger": trigger, "reason": "another monitor pass is running"}
        changes = _settle(now, settings)
        raise_alerts(
            changes,
            now,
            worker_timeout_s=settings["default_timeout"],
            left_within_s=settings["no_worker_after"],
            pending_action=settings["pending_action"],
        )
        # The minute's queue-depth sample first: no_worker reads it for a backlog past its count's cap.
        changes["queue_samples"] = jobs.sample_queue_depth(now, keep=settings["retention"])
        changes["alerts"] = evaluate(now, alert_settings()).json()
        finished_at = utcnow()
        duration_ms = round((time.perf_counter() - clock) * 1000, 3)
        record = MonitorPass(
            started_at=started_at,
            finished_at=finished_at,
            duration_ms=duration_ms,
            instance=instance_name(),
            trigger=trigger,
            changes=changes,
        )
        db.session.add(record)
        db.session.flush()
        db.session.execute(delete(MonitorPass).where(MonitorPass.id <= record.id - PASSES_KEPT))
        db.session.commit()
    return {
        "skipped": False,
        "trigger": trigger,
        "instance": instance_name(),
        "started_at": isoformat(started_at),
        "finished_at": isoformat(finished_at),
        "duration_ms": duration_ms,
        "changed": changed_count(changes),
        **changes,
    }


def changed_count(changes: dict[str, Any]) -> int:
    """How many things a pass changed (late jobs are only reported)."""
    return (
        len(changes["orphaned"])
        + len(changes["never_started"])
        + len(changes["stale_pending"])
        + len(changes["unconfirmed_cancellations"])
        + len(changes["gone_workers"])
        + changes["pruned"]
    )


def _settle(now: datetime, s: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "orphaned": [],
        "never_started": [],
        "stale_pending": [],
        "unconfirmed_cancellations": [],
        "gone_workers": [],
        "pruned": 0,
        "requeued": [],
        "failed": [],
        "late": [],
    }
    limit = s["max_per_kind"]

    worker_cutoff = now - timedelta(seconds=s["default_timeout"])
    for row in db.session.execute(worker_scan(worker_cutoff, limit)).all():
        if jobs.mark_worker_gone(row.id, cutoff=worker_cutoff):
            log.info("worker %s marked gone: last seen %s", row.id, isoformat(row.last_seen_at))
            changes["gone_workers"].append(row.id)

    # Gone workers' jobs stop heartbeating, so this same scan settles them.
    live_rows = db.session.execute(live_scan(now - timedelta(seconds=s["min_timeout"] / 2), limit)).all()
    orphaned, late = classify_live(live_rows, now)
    changes["late"] = [row.id for row, _ in late]
    for row, timeout in orphaned:
        reason = orphan_reason(row)
        job_cutoff = now - timedelta(seconds=timeout)
        # One commit: no reader sees the job orphaned while its worker is still listed alive.
        with unit_of_work():
            _apply(
                changes,
                "orphaned",
                row.id,
                reason,
                lambda: jobs.orphan_job(row.id, cutoff=job_cutoff, reason=reason),
            )
            # Its worker fell silent with it: marked gone now, not a heartbeat timeout later (it was listed idle).
            if (
                row.worker_id
                and row.id in changes["orphaned"]
                and jobs.mark_worker_gone(row.worker_id, cutoff=job_cutoff)
            ):
                log.info("worker %s marked gone: its job %s was orphaned", row.worker_id, row.id)
                changes["gone_workers"].append(row.worker_id)

    unstarted_rows = db.session.execute(unstarted_scan(now - timedelta(seconds=s["min_timeout"]), limit)).all()
    for row, timeout in unstarted_overdue(unstarted_rows, now):
        reason = unstarted_reason(row)
        _apply(
            changes,
            "never_started",
            row.id,
            reason,
            lambda: jobs.orphan_unstarted_job(row.id, cutoff=now - timedelta(seconds=timeout), reason=reason),
        )

    cancel_cutoff = now - timedelta(seconds=s["min_timeout"])
    for row in db.session.execute(cancelled_scan(cancel_cutoff, limit)).all():
        own_cutoff = now - timedelta(seconds=jobs.heartbeat_timeout(row))
        if (
            row.finished_at
            and row.finished_at < own_cutoff
            and jobs.release_unconfirmed_cancellation(row.id, cutoff=own_cutoff)
        ):
            changes["unconfirmed_cancellations"].append(row.id)

    pending_cutoff = now - timedelta(seconds=s["pending_timeout"])
    settle_pending = jobs.release_stale_pending if s["pending_action"] == "queue" else jobs.fail_stale_pending
    for row in db.session.execute(pending_scan(pending_cutoff, limit)).all():
        reason = pending_reason(row)
        _apply(
            changes,
            "stale_pending",
            row.id,
            reason,
            lambda: settle_pending(row.id, cutoff=pending_cutoff, reason=reason),
        )

    retention_cutoff = now - s["retention"]
    # Webhook notifications (and their delivery logs) are kept as long as jobs.
    changes["pruned_notifications"] = prune_notifications(retention_cutoff, batch_size=s["batch_size"])
    # A finished job is pruned only once its hour is rolled up (the /stats history keeps it).
    changes["rolled_up_hours"] = jobs.roll_up(now)
    rolled_up_to = jobs.rolled_up_to()
    prune_cutoff = min(retention_cutoff, rolled_up_to) if rolled_up_to else None
    for status in PRUNED_STATUSES:
        # Most passes find nothing due: a read answers that without a write transaction.
        if prune_cutoff is None or db.session.execute(retention_scan(status, prune_cutoff, 1)).first() is None:
            continue
        for _ in range(s["max_batches"]):
            deleted = jobs.prune_finished(status, cutoff=prune_cutoff, batch_size=s["batch_size"])
            changes["pruned"] += deleted
            if deleted < s["batch_size"]:
                break
    return changes


def _apply(changes: dict[str, Any], kind: str, job_id: int, reason: str, command: Callable[[], Job]) -> None:
    """Run one conditional command; a job that moved on meanwhile is left alone."""
    try:
        job = command()
    except (TransitionRefused, JobNotFound) as refused:
        log.debug("monitor left job %s alone (%s): %s", job_id, kind, refused)
        return
    changes[kind].append(job_id)
    ORPHANS_REAPED.labels(kind).inc()
    changes["requeued" if job.status == Status.QUEUED else "failed"].append(job_id)
    log.info("job %s → %s: %s", job_id, job.status, reason)
