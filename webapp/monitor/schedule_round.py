"""The schedules' round in the monitor's scheduler: it sleeps until the next due fire, not on a fixed poll.

One APScheduler job per process, on an executor of its own (a fire never waits for
a monitor pass or a webhook round). A round fires what is due and learns when the
earliest schedule is next due (store.fire_round: one query on ix_schedules_due when
nothing is due) and sets its own next run to that time, or to MAX_SLEEP from now when that is sooner: a schedule
created or changed through another replica is seen within MAX_SLEEP, while one
changed here wakes the round at once (`wake`, after the change commits). Any replica
running it is enough: the store lets each fire time through once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from flask import Flask

from ..domain.timeutil import utcnow
from ..jobs import schedules as store
from ..store.extensions import db

log = logging.getLogger(__name__)

ROUND_JOB_ID = "schedule-fires"
MAX_SLEEP = timedelta(seconds=30)

_scheduler: Any = None
_wakes = 0  # bumped by every wake: a round that began before one runs again at once
_wakes_lock = threading.Lock()


def wake() -> None:
    """Run the round now (a schedule was created or changed in this process)."""
    global _wakes
    with _wakes_lock:
        _wakes += 1
    scheduler = _scheduler
    if scheduler is not None and scheduler.running:
        try:
            scheduler.modify_job(ROUND_JOB_ID, next_run_time=utcnow())
        except LookupError:
            pass  # shutting down


def run_round(app: Flask, db_guard: Callable[[], AbstractContextManager[Any]] = nullcontext) -> datetime:
    """Fire what is due; when the round should run next."""
    with _wakes_lock:
        wakes_before = _wakes
    with db_guard(), app.app_context():
        try:
            fired = store.fire_round()
            if fired.made:
                log.info("schedules: %d job(s) fired", fired.made)
            due = fired.next_due
        except Exception:
            log.exception("schedule round failed")
            due = None
        finally:
            db.session.remove()
    now = utcnow()
    with _wakes_lock:
        if _wakes != wakes_before:
            return now
    latest = now + MAX_SLEEP
    return latest if due is None else max(now, min(due, latest))


def schedule(scheduler: Any, app: Flask, *, db_guard: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
    """Add the round to the monitor's scheduler: once now, then whenever it sets itself."""
    from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool

    global _scheduler

    def round_then_sleep() -> None:
        next_run = run_round(app, db_guard)
        # The scheduler thread has moved this job on before the round ran (it holds the job
        # store's lock from submitting to storing the next run), so this setting is the last word.
        scheduler.modify_job(ROUND_JOB_ID, next_run_time=next_run)

    scheduler.add_executor(SchedulerPool(1), "schedules")
    scheduler.add_job(
        round_then_sleep,
        "interval",
        seconds=MAX_SLEEP.total_seconds(),
        id=ROUND_JOB_ID,
        executor="schedules",
        next_run_time=utcnow(),
    )
    _scheduler = scheduler
    store.wake_round_with(wake)
