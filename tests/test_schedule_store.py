"""Firing schedules in the store with a controlled clock, on each database: one job per fire time,
misfire and overlap policies, each decision in the schedule's history."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from benchmarks._support import statements_run
from webapp import jobs
from webapp.jobs import schedules as store
from webapp.store import transitions as states
from webapp.store.extensions import db
from webapp.store.models import Job, Schedule

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RACERS = 8


def make(name="nightly", *, now=T0, **settings):
    settings = {"type": "report", "every_s": 60, **settings}
    store.create(name, settings, source="api", actor="test", now=now)


def runs(name="nightly") -> list[datetime]:
    db.session.rollback()
    return list(db.session.scalars(select(Job.scheduled_for).where(Job.schedule == name).order_by(Job.scheduled_for)))


def history(name="nightly") -> list[tuple[str, str]]:
    db.session.rollback()
    return [(event.kind, event.message) for event in reversed(store.history(store.get(name).id))]


def test_a_due_schedule_fires_once_and_moves_on(app):
    make()
    assert store.fire_round(T0 + timedelta(seconds=30)).made == 0
    assert store.fire_round(T0 + timedelta(seconds=60, milliseconds=5)).made == 1
    assert store.fire_round(T0 + timedelta(seconds=61)).made == 0
    assert runs() == [T0 + timedelta(seconds=60)]
    job = db.session.scalar(select(Job).where(Job.schedule == "nightly"))
    assert (job.type, job.status, job.queue, job.max_attempts) == ("report", "queued", "default", 3)
    assert store.get("nightly").next_fire_at == T0 + timedelta(seconds=120)


def test_a_time_already_fired_is_not_fired_again(app):
    make()
    due = T0 + timedelta(seconds=60)
    schedule_id = store.get("nightly").id
    db.session.rollback()
    assert len(store.fire(schedule_id, due)) == 1
    assert store.fire(schedule_id, due) == []
    assert runs() == [due]


def test_the_store_refuses_a_second_job_for_a_fire_time(app):
    make()
    spec = {"type": "report", "schedule": "nightly", "scheduled_for": T0}
    jobs.create_jobs([spec], actor="test")
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        jobs.create_jobs([spec], actor="test")
    db.session.rollback()
    assert runs() == [T0]


def test_misfire_skip_makes_nothing_for_missed_times(app):
    make(misfire="skip")
    assert store.fire_round(T0 + timedelta(minutes=10, seconds=1)).made == 1  # 12:10 is on time; 12:01-12:09 missed
    assert runs() == [T0 + timedelta(minutes=10)]
    assert history()[-1][0] == "skipped" and "9 fire times" in history()[-1][1]


def test_misfire_run_once_makes_one_job_for_the_newest_missed_time(app):
    make(misfire="run_once", every_s=300)
    # Found at 12:51:30: 12:05 … 12:50 were all missed (more than the grace late).
    assert store.fire_round(T0 + timedelta(minutes=51, seconds=30)).made == 1
    assert runs() == [T0 + timedelta(minutes=50)]
    assert "skipped 9 fire times" in history()[-1][1]
    assert store.get("nightly").next_fire_at == T0 + timedelta(minutes=55)


def test_misfire_all_makes_every_missed_time_up_to_the_cap(app):
    make(misfire="all", every_s=300)
    assert store.fire_round(T0 + timedelta(minutes=51, seconds=30)).made == 10
    assert runs() == [T0 + timedelta(minutes=m) for m in range(5, 55, 5)]
    db.session.rollback()
    store.change("nightly", {"every_s": 1}, actor="test", now=T0 + timedelta(hours=1))
    later = T0 + timedelta(hours=1, seconds=store.MISFIRE_ALL_CAP + 200)
    assert store.fire_round(later).made == store.MISFIRE_ALL_CAP
    assert history()[-1][0] == "skipped"


def live_previous(status: states.Status = states.Status.RUNNING) -> int:
    job = db.session.scalar(select(Job).where(Job.schedule == "nightly"))
    db.session.execute(update(Job).where(Job.id == job.id).values(status=status))
    db.session.commit()
    return job.id


def test_overlap_skip_skips_a_time_while_the_previous_run_is_live(app):
    make(overlap="skip")
    store.fire_round(T0 + timedelta(seconds=60))
    previous = live_previous()
    assert store.fire_round(T0 + timedelta(seconds=120)).made == 0
    assert history()[-1] == ("skipped", f"skipped 2026-03-01 12:02:00 UTC: previous run {previous} still running")
    assert store.get("nightly").next_fire_at == T0 + timedelta(seconds=180)


def test_overlap_wait_fires_the_time_once_the_previous_run_ends(app):
    make(overlap="wait")
    store.fire_round(T0 + timedelta(seconds=60))
    previous = live_previous()
    assert store.fire_round(T0 + timedelta(seconds=120)).made == 0
    assert store.fire_round(T0 + timedelta(seconds=121)).made == 0  # rechecked: still waiting, said once
    assert [kind for kind, _ in history()].count("waiting") == 1
    assert f"previous run {previous} still running" in history()[-1][1]
    db.session.execute(update(Job).where(Job.id == previous).values(status="completed"))
    db.session.commit()
    assert store.fire_round(T0 + timedelta(seconds=123)).made == 1
    assert runs()[-1] == T0 + timedelta(seconds=120)


def test_a_paused_schedule_does_not_fire_and_resumes_from_now(app):
    make()
    store.set_paused("nightly", True, actor="test", now=T0)
    assert store.fire_round(T0 + timedelta(minutes=5)).made == 0
    store.set_paused("nightly", False, actor="test", now=T0 + timedelta(minutes=5, seconds=1))
    assert store.get("nightly").next_fire_at == T0 + timedelta(minutes=6)
    assert [kind for kind, _ in history()] == ["created", "paused", "resumed"]


def test_a_round_says_when_the_earliest_unpaused_schedule_is_due_in_one_query(app):
    make("a", every_s=600)
    make("b", every_s=60)
    with statements_run(db.engine) as statements:
        assert store.fire_round(T0 + timedelta(seconds=1)) == store.Round(0, T0 + timedelta(seconds=60))
    (query,) = [statement for statement, _ in statements if "schedules" in statement]
    assert query.lstrip().startswith("SELECT")
    db.session.rollback()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL enable_seqscan = off"))  # a two-row table: show what it would use
        plan = db.session.execute(text(f"EXPLAIN {store_query()}")).scalars().all()
    else:
        plan = [row[-1] for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {store_query()}"))]
    db.session.rollback()
    assert "ix_schedules_due" in " ".join(plan), plan
    store.set_paused("b", True, actor="test", now=T0)
    assert store.fire_round(T0 + timedelta(seconds=61)).next_due == T0 + timedelta(seconds=600)


def test_trigger_makes_a_job_now_outside_the_timetable(app):
    make()
    job = store.trigger("nightly", actor="test", now=T0 + timedelta(seconds=5))
    assert (job.schedule, job.scheduled_for) == ("nightly", T0 + timedelta(seconds=5))
    assert store.get("nightly").next_fire_at == T0 + timedelta(seconds=60)


def test_declared_schedules_sync_and_a_missing_one_is_kept_and_marked(app):
    declared = [{"name": "a", "type": "x", "cron": "0 3 * * *"}, {"name": "b", "type": "y", "every_s": 30}]
    assert store.sync_declared(declared, actor="worker", now=T0)["created"] == ["a", "b"]
    assert store.sync_declared(declared, actor="worker", now=T0) == {
        "created": [],
        "changed": [],
        "missing": [],
        "conflicts": [],
    }
    result = store.sync_declared([{**declared[0], "cron": "0 4 * * *"}], actor="worker", now=T0)
    assert (result["changed"], result["missing"]) == (["a"], ["b"])
    db.session.rollback()
    assert store.get("b").missing_from_code is True
    assert db.session.scalar(select(func.count()).select_from(Schedule)) == 2
    store.sync_declared(declared, actor="worker", now=T0)
    db.session.rollback()
    assert store.get("b").missing_from_code is False


def test_racing_fires_of_one_time_make_one_job(app):
    """Eight threads, each its own connection, fire the same due schedule at once."""
    make()
    schedule_id = store.get("nightly").id
    db.session.rollback()
    due = T0 + timedelta(seconds=60)
    barrier = threading.Barrier(RACERS)
    made: list[int] = []
    errors: list[BaseException] = []

    def racer() -> None:
        with app.app_context():
            try:
                barrier.wait()
                made.append(len(store.fire(schedule_id, due)))
            except BaseException as error:  # reported by the test thread below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=racer) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(made) == [0] * (RACERS - 1) + [1]
    assert runs() == [due]


def store_query() -> str:
    """The round's query, its limit written in (EXPLAIN takes no parameters)."""
    statement = store.earliest_query(store.FIRE_BATCH)
    return str(statement.compile(db.engine, compile_kwargs={"literal_binds": True}))
