"""Schedules due together fire together (webapp.jobs.schedules.fire_many), on each database: one
commit for the batch, still one job per (schedule, fire time) with racing replicas, the policies'
history intact, and a schedule that breaks the batch does not hold up the others."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select, update

from webapp import jobs
from webapp.jobs import schedules as store
from webapp.store.extensions import db
from webapp.store.models import Job

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DUE = T0 + timedelta(seconds=60)
COUNT = 12
RACERS = 6


def make_many(count: int = COUNT, **settings) -> list[str]:
    names = [f"s{number:02d}" for number in range(count)]
    for name in names:
        store.create(name, {"type": "report", "every_s": 60, **settings}, source="api", actor="test", now=T0)
    return names


def runs() -> list[tuple[str, datetime]]:
    db.session.rollback()
    return [tuple(row) for row in db.session.execute(select(Job.schedule, Job.scheduled_for).order_by(Job.schedule))]


def test_schedules_due_together_fire_in_one_commit(app):
    names = make_many()
    commits: list[object] = []

    def count(connection) -> None:
        commits.append(connection)

    event.listen(db.engine, "commit", count)
    try:
        assert store.fire_round(DUE).made == COUNT
    finally:
        event.remove(db.engine, "commit", count)
    assert len(commits) == 1
    assert runs() == [(name, DUE) for name in names]


def test_a_batch_keeps_each_schedules_overlap_decision_in_its_history(app):
    make_many(2, overlap="skip")
    store.fire_round(DUE)
    db.session.rollback()
    previous = db.session.scalar(select(Job.id).where(Job.schedule == "s00"))
    db.session.execute(update(Job).where(Job.id == previous).values(status="running"))
    db.session.execute(update(Job).where(Job.schedule == "s01").values(status="completed"))
    db.session.commit()
    assert store.fire_round(DUE + timedelta(seconds=60)).made == 1  # s01 fires; s00 skips
    assert runs() == [("s00", DUE), ("s01", DUE), ("s01", DUE + timedelta(seconds=60))]
    db.session.rollback()
    skipped = [(e.kind, e.message) for e in store.history(store.get("s00").id) if e.kind == "skipped"]
    assert skipped == [("skipped", f"skipped 2026-03-01 12:02:00 UTC: previous run {previous} still running")]
    assert [e.kind for e in store.history(store.get("s01").id)] == ["created"]


def test_a_schedule_that_breaks_the_batch_does_not_hold_up_the_others(app, caplog):
    names = make_many(4)
    # A job already holds s02's fire time: its INSERT fails the batch's, so the round fires one by one.
    jobs.create_jobs([{"type": "report", "schedule": "s02", "scheduled_for": DUE}], actor="test")
    db.session.rollback()
    assert store.fire_round(DUE).made == 3
    assert runs() == [(name, DUE) for name in names]
    assert "a batch of 4 fires failed" in caplog.text
    assert f"schedule {store.get('s02').id}: fire failed" in caplog.text
    db.session.rollback()
    assert store.get("s02").next_fire_at == DUE  # left for the next round
    assert store.get("s01").next_fire_at == DUE + timedelta(seconds=60)


def test_racing_batches_make_one_job_per_fire_time(app):
    """Six threads, each its own connection, fire the same due schedules at once."""
    names = make_many()
    db.session.rollback()
    barrier = threading.Barrier(RACERS)
    made: list[int] = []
    errors: list[BaseException] = []

    def racer() -> None:
        with app.app_context():
            try:
                barrier.wait()
                made.append(store.fire_round(DUE).made)
            except BaseException as error:  # reported by the test thread below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=racer) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sum(made) == COUNT
    assert runs() == [(name, DUE) for name in names]
