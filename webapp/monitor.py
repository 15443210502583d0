"""The health monitor: finds runs nobody is running any more and settles them.

A pass (`run_pass`) looks at a handful of index ranges — never the whole jobs
table — and moves what it finds through the state machine (the commands in
`webapp.jobs`), one compare-and-set per job, each with an event by actor
`monitor` that says why. Because every change repeats the scan's conditions,
two passes (two replicas, or a manual cleanup beside the schedule) never act
twice on one job; on PostgreSQL an advisory lock also lets only one pass run
at a time, and the others skip.

Where it runs (`start_scheduler`): once per serving process — in the
development server's reloader child, not its parent; under gunicorn in the
master only, through the hooks in the project's `gunicorn.conf.py` — and as
its own process with `jobwarden monitor`. Other CLI commands never start it.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import click
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask, current_app
from flask.helpers import get_debug_flag
from sqlalchemy import Select, delete, select, text
from werkzeug.serving import is_running_from_reloader

from . import jobs
from .config import ConfigError
from .extensions import db
from .metrics import ORPHANS_REAPED
from .models import Job, MonitorPass, Worker
from .states import LIVE, JobNotFound, Status, TransitionRefused
from .timeutil import isoformat, utcnow
from .webhooks.alerts import raise_alerts
from .webhooks.delivery import schedule as schedule_webhook_deliveries
from .webhooks.endpoints import health as webhook_health
from .webhooks.outbox import prune as prune_notifications

log = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key shared by every Jobwarden replica ("JOBWARDN" in ASCII).
LOCK_KEY = 0x4A4F4257_41524B4E & 0x7FFFFFFFFFFFFFFF
PENDING_ACTIONS = ("fail", "queue")
# Bounds that keep one pass short however much a crash left behind; the rest waits for the next pass.
DEFAULT_MAX_PER_KIND = 1000
DEFAULT_RETENTION_BATCH_SIZE = 1000
DEFAULT_RETENTION_MAX_BATCHES = 10
PASSES_KEPT = 1000
REPORT_LIMIT = 100
COUNT_CAP = 10_000
PRUNED_STATUSES = (Status.COMPLETED, Status.CANCELLED)


# --- settings ---------------------------------------------------------------


def _settings() -> dict[str, Any]:
    config = current_app.config
    action = config["JOBWARDEN_PENDING_ACTION"]
    if action not in PENDING_ACTIONS:
        raise ConfigError(f"JOBWARDEN_PENDING_ACTION must be fail or queue, got {action!r}")
    default_timeout = float(config["JOBWARDEN_HEARTBEAT_TIMEOUT"])
    return {
        "interval": float(config["JOBWARDEN_MONITOR_INTERVAL"]),
        "default_timeout": default_timeout,
        # The shortest timeout of any type bounds every heartbeat scan; each job is then judged by its own.
        "min_timeout": min([default_timeout, *map(float, config["JOBWARDEN_TYPE_TIMEOUTS"].values())]),
        "pending_timeout": float(config["JOBWARDEN_PENDING_TIMEOUT"]),
        "pending_action": action,
        "retention": timedelta(days=float(config["JOBWARDEN_RETENTION_DAYS"])),
        "max_per_kind": int(config.get("JOBWARDEN_MONITOR_MAX_PER_KIND", DEFAULT_MAX_PER_KIND)),
        "batch_size": int(config.get("JOBWARDEN_RETENTION_BATCH_SIZE", DEFAULT_RETENTION_BATCH_SIZE)),
        "max_batches": int(config.get("JOBWARDEN_RETENTION_MAX_BATCHES", DEFAULT_RETENTION_MAX_BATCHES)),
    }


# --- the scans (each one index range; the benchmark EXPLAINs these) ---------------


def live_scan(cutoff: datetime, limit: int) -> Select:
    """Claimed or running jobs whose last heartbeat is older than `cutoff` (ix_jobs_status_heartbeat)."""
    return (
        select(Job.id, Job.type, Job.status, Job.worker_id, Job.heartbeat_at, Job.claimed_at)
        .where(Job.status.in_(LIVE), Job.heartbeat_at < cutoff)
        .order_by(Job.heartbeat_at)
        .limit(limit)
    )


def unstarted_scan(cutoff: datetime, limit: int) -> Select:
    """Claimed jobs claimed before `cutoff` (a status-prefixed index; claimed jobs are few)."""
    return (
        select(Job.id, Job.type, Job.status, Job.worker_id, Job.heartbeat_at, Job.claimed_at)
        .where(Job.status == Status.CLAIMED, Job.claimed_at < cutoff)
        .order_by(Job.claimed_at)
        .limit(limit)
    )


def pending_scan(cutoff: datetime, limit: int) -> Select:
    """Jobs held in pending since before `cutoff` (ix_jobs_status_created)."""
    return (
        select(Job.id, Job.type, Job.created_at)
        .where(Job.status == Status.PENDING, Job.created_at < cutoff)
        .order_by(Job.created_at)
        .limit(limit)
    )


def cancelled_scan(cutoff: datetime, limit: int) -> Select:
    """Cancelled jobs that still hold a lease, last heartbeat before `cutoff` (ix_jobs_status_heartbeat).

    Releasing the lease also clears heartbeat_at, so settled ones leave this range.
    """
    return (
        select(Job.id, Job.type, Job.worker_id, Job.heartbeat_at, Job.finished_at)
        .where(Job.status == Status.CANCELLED, Job.heartbeat_at < cutoff, Job.lease_token.is_not(None))
        .order_by(Job.heartbeat_at)
        .limit(limit)
    )


def retention_scan(status: str, cutoff: datetime, limit: int) -> Select:
    """What `jobs.prune_finished` deletes in one batch (ix_jobs_status_finished); shown for EXPLAIN."""
    return (
        select(Job.id)
        .where(Job.status == status, Job.finished_at < cutoff)
        .order_by(Job.finished_at)
        .limit(limit)
    )


def worker_scan(cutoff: datetime, limit: int) -> Select:
    """Alive workers last seen before `cutoff` (ix_workers_last_seen)."""
    return (
        select(Worker.id, Worker.last_seen_at)
        .where(Worker.last_seen_at < cutoff, Worker.state == "alive")
        .order_by(Worker.last_seen_at)
        .limit(limit)
    )


def scans(now: datetime | None = None) -> dict[str, Select]:
    """Every scan a pass runs, with this deployment's cut-offs."""
    now = now or utcnow()
    s = _settings()
    return {
        "live": live_scan(now - timedelta(seconds=s["min_timeout"] / 2), s["max_per_kind"]),
        "unstarted": unstarted_scan(now - timedelta(seconds=s["min_timeout"]), s["max_per_kind"]),
        "pending": pending_scan(now - timedelta(seconds=s["pending_timeout"]), s["max_per_kind"]),
        "cancelled": cancelled_scan(now - timedelta(seconds=s["min_timeout"]), s["max_per_kind"]),
        "workers": worker_scan(now - timedelta(seconds=s["default_timeout"]), s["max_per_kind"]),
        **{
            f"retention_{status}": retention_scan(status, now - s["retention"], s["batch_size"])
            for status in PRUNED_STATUSES
        },
    }


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds(), 3)


def _classify_live(rows, now: datetime) -> tuple[list, list]:
    """Split live rows into (orphaned, late) by each job's own timeout."""
    orphaned, late = [], []
    for row in rows:
        age = (now - row.heartbeat_at).total_seconds()
        timeout = jobs.timeout_for(row)
        if age > timeout:
            orphaned.append((row, timeout))
        elif age > timeout / 2:
            late.append((row, timeout))
    return orphaned, late


def _unstarted(rows, now: datetime) -> list:
    return [
        (row, timeout) for row in rows
        if (now - row.claimed_at).total_seconds() > (timeout := jobs.timeout_for(row))
    ]


def _orphan_reason(row) -> str:
    return f"orphaned: no heartbeat from worker {row.worker_id} since {isoformat(row.heartbeat_at)}"


def _unstarted_reason(row) -> str:
    return f"orphaned: claimed by worker {row.worker_id} at {isoformat(row.claimed_at)} and never started"


def _pending_reason(row) -> str:
    return f"stuck in pending since {isoformat(row.created_at)}"


# --- one pass -----------------------------------------------------------------


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def _one_pass_at_a_time() -> Iterator[bool]:
    """On PostgreSQL, hold pg_try_advisory_xact_lock for the pass on a connection of its own.

    The lock lives in that connection's open transaction, so it goes when the
    pass ends or its process dies. SQLite has no such lock; the conditional
    changes alone keep a second pass harmless there.
    """
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    with db.engine.connect() as connection, connection.begin():
        yield bool(connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY}).scalar())


def run_pass(*, trigger: str = "schedule", now: datetime | None = None) -> dict[str, Any]:
    """One monitor pass: settle what is stuck, prune what is old, record the pass.

    Returns the ids changed per kind (and where orphaned or stale jobs ended
    up), the late jobs seen, and the timing; `{"skipped": True}` when another
    replica's pass holds the lock.
    """
    clock = time.perf_counter()
    started_at = utcnow()
    now = now or started_at
    settings = _settings()
    with _one_pass_at_a_time() as ours:
        if not ours:
            return {"skipped": True, "trigger": trigger, "reason": "another monitor pass is running"}
        changes = _settle(now, settings)
        raise_alerts(changes, now, worker_timeout_s=settings["default_timeout"],
                     pending_action=settings["pending_action"])
        finished_at = utcnow()
        duration_ms = round((time.perf_counter() - clock) * 1000, 3)
        record = MonitorPass(
            started_at=started_at, finished_at=finished_at, duration_ms=duration_ms,
            instance=instance_name(), trigger=trigger, changes=changes,
        )
        db.session.add(record)
        db.session.flush()
        db.session.execute(delete(MonitorPass).where(MonitorPass.id <= record.id - PASSES_KEPT))
        db.session.commit()
    return {
        "skipped": False, "trigger": trigger, "instance": instance_name(),
        "started_at": isoformat(started_at), "finished_at": isoformat(finished_at),
        "duration_ms": duration_ms, "changed": changed_count(changes), **changes,
    }


def changed_count(changes: dict[str, Any]) -> int:
    """How many things a pass changed (late jobs are only reported)."""
    return (
        len(changes["orphaned"]) + len(changes["never_started"]) + len(changes["stale_pending"])
        + len(changes["unconfirmed_cancellations"]) + len(changes["gone_workers"]) + changes["pruned"]
    )


def _settle(now: datetime, s: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "orphaned": [], "never_started": [], "stale_pending": [], "unconfirmed_cancellations": [],
        "gone_workers": [], "pruned": 0, "requeued": [], "failed": [], "late": [],
    }
    limit = s["max_per_kind"]

    worker_cutoff = now - timedelta(seconds=s["default_timeout"])
    for row in db.session.execute(worker_scan(worker_cutoff, limit)).all():
        if jobs.mark_worker_gone(row.id, cutoff=worker_cutoff):
            log.info("worker %s marked gone: last seen %s", row.id, isoformat(row.last_seen_at))
            changes["gone_workers"].append(row.id)

    # Gone workers' jobs stop heartbeating, so this same scan settles them.
    live_rows = db.session.execute(live_scan(now - timedelta(seconds=s["min_timeout"] / 2), limit)).all()
    orphaned, late = _classify_live(live_rows, now)
    changes["late"] = [row.id for row, _ in late]
    for row, timeout in orphaned:
        reason = _orphan_reason(row)
        _apply(changes, "orphaned", row.id, reason, lambda: jobs.orphan_job(
            row.id, cutoff=now - timedelta(seconds=timeout), reason=reason))

    unstarted_rows = db.session.execute(unstarted_scan(now - timedelta(seconds=s["min_timeout"]), limit)).all()
    for row, timeout in _unstarted(unstarted_rows, now):
        reason = _unstarted_reason(row)
        _apply(changes, "never_started", row.id, reason, lambda: jobs.orphan_unstarted_job(
            row.id, cutoff=now - timedelta(seconds=timeout), reason=reason))

    cancel_cutoff = now - timedelta(seconds=s["min_timeout"])
    for row in db.session.execute(cancelled_scan(cancel_cutoff, limit)).all():
        own_cutoff = now - timedelta(seconds=jobs.timeout_for(row))
        if row.finished_at and row.finished_at < own_cutoff and jobs.release_unconfirmed_cancellation(
            row.id, cutoff=own_cutoff
        ):
            changes["unconfirmed_cancellations"].append(row.id)

    pending_cutoff = now - timedelta(seconds=s["pending_timeout"])
    settle_pending = jobs.release_stale_pending if s["pending_action"] == "queue" else jobs.fail_stale_pending
    for row in db.session.execute(pending_scan(pending_cutoff, limit)).all():
        reason = _pending_reason(row)
        _apply(changes, "stale_pending", row.id, reason, lambda: settle_pending(
            row.id, cutoff=pending_cutoff, reason=reason))

    retention_cutoff = now - s["retention"]
    # Webhook notifications (and their delivery logs) are kept as long as jobs.
    changes["pruned_notifications"] = prune_notifications(retention_cutoff, batch_size=s["batch_size"])
    for status in PRUNED_STATUSES:
        # Most passes find nothing due: a read answers that without a write transaction.
        if db.session.execute(retention_scan(status, retention_cutoff, 1)).first() is None:
            continue
        for _ in range(s["max_batches"]):
            deleted = jobs.prune_finished(status, cutoff=retention_cutoff, batch_size=s["batch_size"])
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


# --- the health report ----------------------------------------------------------


def health_report(*, now: datetime | None = None) -> dict[str, Any]:
    """What is stuck or about to be, the workers, and the monitor's last and next pass.

    Read-only: it shows what the next pass will do (orphaned, stale pending)
    and the `late` tier — live jobs past half their timeout — before anything
    is done to them.
    """
    now = now or utcnow()
    s = _settings()
    live_rows = db.session.execute(
        live_scan(now - timedelta(seconds=s["min_timeout"] / 2), REPORT_LIMIT)
    ).all()
    orphaned, late = _classify_live(live_rows, now)
    unstarted_rows = db.session.execute(
        unstarted_scan(now - timedelta(seconds=s["min_timeout"]), REPORT_LIMIT)
    ).all()
    orphaned_ids = {row.id for row, _ in orphaned}
    orphaned_jobs = [_live_entry(row, timeout, now, _orphan_reason(row)) for row, timeout in orphaned]
    orphaned_jobs += [
        _live_entry(row, timeout, now, _unstarted_reason(row))
        for row, timeout in _unstarted(unstarted_rows, now) if row.id not in orphaned_ids
    ]
    pending_rows = db.session.execute(
        pending_scan(now - timedelta(seconds=s["pending_timeout"]), REPORT_LIMIT)
    ).all()
    stale_pending_jobs = [
        {"id": row.id, "type": row.type, "created_at": isoformat(row.created_at),
         "pending_s": _age(now, row.created_at), "action": s["pending_action"], "reason": _pending_reason(row)}
        for row in pending_rows
    ]
    monitor = _monitor_status(now, s["interval"])
    webhooks = webhook_health()
    return {
        "healthy": (not orphaned_jobs and not stale_pending_jobs and not monitor["overdue"]
                    and not webhooks["disabled_endpoints"]),
        "checked_at": isoformat(now),
        "orphaned_jobs": orphaned_jobs,
        "late_jobs": [_live_entry(row, timeout, now, None) for row, timeout in late],
        "stale_pending_jobs": stale_pending_jobs,
        "counts": jobs.count_by_status(cap=COUNT_CAP),
        "counts_cap": COUNT_CAP,
        "workers": _workers(now, s["default_timeout"]),
        "monitor": monitor,
        "webhooks": webhooks,
    }


def _live_entry(row, timeout: float, now: datetime, reason: str | None) -> dict[str, Any]:
    return {
        "id": row.id, "type": row.type, "status": row.status, "worker_id": row.worker_id,
        "heartbeat_at": isoformat(row.heartbeat_at), "claimed_at": isoformat(row.claimed_at),
        "since_heartbeat_s": _age(now, row.heartbeat_at), "timeout_s": timeout,
        **({"reason": reason} if reason else {}),
    }


def _workers(now: datetime, timeout: float) -> list[dict[str, Any]]:
    rows = db.session.scalars(select(Worker).order_by(Worker.last_seen_at.desc()).limit(REPORT_LIMIT))
    report = []
    for worker in rows:
        silent = (now - worker.last_seen_at).total_seconds()
        heartbeat = "expired" if silent > timeout else "late" if silent > timeout / 2 else "ok"
        report.append({
            "id": worker.id, "hostname": worker.hostname, "pid": worker.pid, "types": worker.types,
            "concurrency": worker.concurrency, "state": worker.state, "heartbeat": heartbeat,
            "started_at": isoformat(worker.started_at), "last_seen_at": isoformat(worker.last_seen_at),
            "since_seen_s": round(silent, 3),
        })
    return report


def _monitor_status(now: datetime, interval: float) -> dict[str, Any]:
    """The last pass any replica recorded, and when the next is due.

    The next pass is this process's scheduler's when it runs one; otherwise
    it is estimated from the last pass, as another process runs the monitor.
    """
    last = db.session.scalars(select(MonitorPass).order_by(MonitorPass.id.desc()).limit(1)).first()
    here = _scheduled_here()
    if here is not None:
        next_run, estimated = here, False
    elif last is not None:
        next_run, estimated = last.started_at + timedelta(seconds=interval), True
    else:
        next_run, estimated = None, True
    return {
        "enabled": bool(current_app.config["JOBWARDEN_MONITOR"]),
        "runs_here": here is not None,
        "interval_s": interval,
        "last_run": None if last is None else {
            "started_at": isoformat(last.started_at), "finished_at": isoformat(last.finished_at),
            "duration_ms": last.duration_ms, "trigger": last.trigger, "instance": last.instance,
            "changed": changed_count(last.changes) if last.changes else 0,
            "changes": {k: (v if isinstance(v, int) else len(v)) for k, v in (last.changes or {}).items()},
        },
        "next_run": isoformat(next_run),
        "next_run_estimated": estimated,
        # Two intervals without a pass: no monitor is running anywhere.
        "overdue": next_run is not None and now > next_run + timedelta(seconds=interval),
    }


# --- where it runs ---------------------------------------------------------------

_scheduler: BackgroundScheduler | None = None
_scheduler_app: Flask | None = None
_runs_in_parent = False
_start_lock = threading.Lock()
# Held by a pass, and by a fork of this process (see _guard_forks): a gunicorn worker
# forked while the master's pass was inside SQLite or the driver would inherit their
# internal locks held, and hang on its first query.
_no_fork_during_a_pass = threading.Lock()
_forks_guarded = False


def _guard_forks() -> None:
    """Make every later fork of this process wait for a running pass to finish (once per process)."""
    global _forks_guarded
    if _forks_guarded:
        return
    os.register_at_fork(
        before=_no_fork_during_a_pass.acquire,
        after_in_parent=_no_fork_during_a_pass.release,
        after_in_child=_no_fork_during_a_pass.release,
    )
    _forks_guarded = True
PASS_JOB_ID = "monitor-pass"
# CLI commands that serve the app in their own process (`dev` runs without the reloader).
SERVING_COMMANDS = frozenset({"run", "dev"})


def _serving_process() -> bool:
    """True where an in-process monitor belongs.

    A WSGI server's process (no click command around it), `jobwarden dev`, or
    the development server's reloader child. Not the reloader's parent, which only watches
    files, and not other CLI commands (db upgrade, shell, worker, submit, and
    `monitor`, which runs its own scheduler in the foreground).
    """
    if is_running_from_reloader():
        return True
    context = click.get_current_context(silent=True)
    if context is None:
        return True
    if context.info_name not in SERVING_COMMANDS:
        return False
    if "reload" not in context.params:
        return True
    reload = context.params["reload"]
    return not (get_debug_flag() if reload is None else reload)


def _scheduler_options() -> dict[str, Any]:
    # One thread: passes in a process never overlap; a late pass runs once, late.
    return {
        "timezone": timezone.utc,
        "executors": {"default": ThreadPoolExecutor(1)},
        "job_defaults": {"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    }


def _scheduled_pass(app: Flask, trigger: str) -> None:
    with _no_fork_during_a_pass, app.app_context():
        try:
            result = run_pass(trigger=trigger)
        except Exception:
            log.exception("monitor pass failed")
            return
    if result["skipped"]:
        log.debug("monitor pass skipped: %s", result["reason"])
    elif result["changed"]:
        log.info("monitor pass (%s) changed %d in %.1f ms", trigger, result["changed"], result["duration_ms"])


def start_scheduler(app: Flask) -> None:
    """Run the monitor in this process: a pass at once (start-up reconciliation), then every interval.

    Idempotent per process; does nothing outside a serving process (see
    `_serving_process`) or in a gunicorn worker whose master runs it.
    """
    global _scheduler, _scheduler_app
    with _start_lock:
        if _scheduler is not None or _runs_in_parent or not _serving_process():
            return
        with app.app_context():
            interval = _settings()["interval"]
        scheduler = BackgroundScheduler(daemon=True, **_scheduler_options())
        now = datetime.now(timezone.utc)
        scheduler.add_job(_scheduled_pass, "date", run_date=now, args=[app, "startup"], id="monitor-startup")
        scheduler.add_job(
            _scheduled_pass, "interval", seconds=interval, args=[app, "schedule"], id=PASS_JOB_ID,
            next_run_time=now + timedelta(seconds=interval),
        )
        schedule_webhook_deliveries(scheduler, app, db_guard=lambda: _no_fork_during_a_pass)
        _guard_forks()
        scheduler.start()
        _scheduler, _scheduler_app = scheduler, app
        atexit.register(stop_scheduler)
        log.info("health monitor started in process %s, every %.1f s", os.getpid(), interval)


def stop_scheduler() -> None:
    global _scheduler
    with _start_lock:
        if _scheduler is not None:
            _scheduler.shutdown(wait=False)
            _scheduler = None


def _scheduled_here() -> datetime | None:
    scheduler = _scheduler
    if scheduler is None or not scheduler.running:
        return None
    job = scheduler.get_job(PASS_JOB_ID)
    return job.next_run_time if job else None


def after_fork() -> None:
    """In a gunicorn worker forked from a master that runs the monitor (gunicorn.conf.py's post_fork).

    The master's scheduler thread did not come along and must not be started
    again here; its pooled connections belong to the master, so drop them
    without closing.
    """
    global _scheduler, _runs_in_parent
    with _start_lock:
        if _scheduler is None:
            return
        _runs_in_parent = True
        _scheduler = None
        if _scheduler_app is not None:
            with _scheduler_app.app_context():
                db.engine.dispose(close=False)


def run_foreground(app: Flask, *, interval: float | None = None, once: bool = False,
                   echo: Callable[[str], None] = click.echo) -> None:
    """`jobwarden monitor`: a start-up pass now, then a pass every interval until SIGTERM/SIGINT."""
    with app.app_context():
        interval = interval or _settings()["interval"]
        echo(_summary(run_pass(trigger="startup")))
    if once:
        return
    scheduler = BlockingScheduler(**_scheduler_options())

    def report(trigger: str) -> None:
        with app.app_context():
            try:
                result = run_pass(trigger=trigger)
            except Exception:
                log.exception("monitor pass failed")
                return
        # Quiet passes stay quiet; anything done, seen late or skipped is printed.
        if result["skipped"] or result["changed"] or result["late"]:
            echo(_summary(result))

    scheduler.add_job(report, "interval", seconds=interval, args=["schedule"], id=PASS_JOB_ID)
    schedule_webhook_deliveries(scheduler, app)
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    echo(f"health monitor running every {interval:g} s (pid {os.getpid()}); Ctrl-C to stop")
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass


def _summary(result: dict[str, Any]) -> str:
    if result["skipped"]:
        return f"pass skipped: {result['reason']}"
    kinds = ("orphaned", "never_started", "stale_pending", "unconfirmed_cancellations", "gone_workers")
    parts = [f"{kind}={len(result[kind])}" for kind in kinds if result[kind]]
    if result["pruned"]:
        parts.append(f"pruned={result['pruned']}")
    if result["late"]:
        parts.append(f"late={len(result['late'])}")
    return f"{result['started_at']} pass ({result['trigger']}, {result['duration_ms']:.1f} ms): " + (
        ", ".join(parts) or "nothing to do"
    )
