"""Where the monitor runs: a scheduler in each serving process, or `jobwarden monitor` in the foreground.

Once per serving process — in the development server's reloader child, not
its parent; under gunicorn in the master only, through the hooks in the
project's `gunicorn.conf.py` — and as its own process with `jobwarden
monitor`. Other CLI commands never start it.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from flask.helpers import get_debug_flag
from werkzeug.serving import is_running_from_reloader

from ..config import SERVING_COMMANDS
from ..store.extensions import db
from ..webhooks.delivery import schedule as schedule_webhook_deliveries
from .schedule_round import schedule as schedule_fires
from .settings import monitor_settings
from .settle import run_pass

log = logging.getLogger(__name__)

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
        "timezone": UTC,
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
            interval = monitor_settings()["interval"]
        scheduler = BackgroundScheduler(daemon=True, **_scheduler_options())
        now = datetime.now(UTC)
        scheduler.add_job(_scheduled_pass, "date", run_date=now, args=[app, "startup"], id="monitor-startup")
        scheduler.add_job(
            _scheduled_pass,
            "interval",
            seconds=interval,
            args=[app, "schedule"],
            id=PASS_JOB_ID,
            next_run_time=now + timedelta(seconds=interval),
        )
        schedule_webhook_deliveries(scheduler, app, db_guard=lambda: _no_fork_during_a_pass)
        schedule_fires(scheduler, app, db_guard=lambda: _no_fork_during_a_pass)
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


def scheduled_here() -> datetime | None:
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


def run_foreground(
    app: Flask, *, interval: float | None = None, once: bool = False, echo: Callable[[str], None] = click.echo
) -> None:
    """`jobwarden monitor`: a start-up pass now, then a pass every interval until SIGTERM/SIGINT."""
    with app.app_context():
        interval = interval or monitor_settings()["interval"]
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
    schedule_fires(scheduler, app)
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
