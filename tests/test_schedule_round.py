"""The monitor's schedule round (webapp.monitor.schedule_round) sleeps until the next due fire, not
on a fixed poll: its next run is the earliest schedule's due time (capped at MAX_SLEEP), and a
schedule created in this process moves it at once. Real APScheduler, real store, on each database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from benchmarks._support import wait_until
from webapp.domain.timeutil import utcnow
from webapp.jobs import schedules as store
from webapp.monitor import schedule_round


def make(name: str, every_s: int) -> None:
    store.create(name, {"type": "report", "every_s": every_s}, source="api", actor="test")


def test_a_round_sleeps_until_the_earliest_due_fire(app):
    make("soon", 5)
    make("later", 20)
    due = store.get("soon").due_at
    assert schedule_round.run_round(app) == due


def test_a_round_with_nothing_due_within_max_sleep_looks_again_after_max_sleep(app):
    make("hourly", 3600)
    before = utcnow()
    next_run = schedule_round.run_round(app)
    assert before + schedule_round.MAX_SLEEP <= next_run <= utcnow() + schedule_round.MAX_SLEEP


@pytest.fixture
def scheduler(app):
    running = BackgroundScheduler(timezone="UTC")
    running.start(paused=True)  # the round job is added first, then let go
    yield running
    running.shutdown(wait=True)
    schedule_round._scheduler = None


def next_run_of(scheduler) -> object:
    return scheduler.get_job(schedule_round.ROUND_JOB_ID).next_run_time


def test_the_scheduled_round_wakes_for_the_next_due_fire_and_for_a_new_schedule(app, scheduler):
    make("daily", 86_400)
    schedule_round.schedule(scheduler, app)
    scheduler.resume()
    daily_due = store.get("daily").due_at
    # After its first round the job sleeps, at most MAX_SLEEP: the daily fire is further away.
    wait_until(
        lambda: next_run_of(scheduler) > utcnow() + timedelta(seconds=5), 20, "the round to sleep until the daily fire"
    )
    assert next_run_of(scheduler) < daily_due
    # A schedule created here wakes the round, which then sleeps until exactly that schedule's
    # fire time: no poll interval would land on it.
    make("soon", 12)
    soon_due = store.get("soon").due_at
    wait_until(lambda: next_run_of(scheduler) == soon_due, 20, "the round to wake for the new schedule")
