"""Schedules in the store: their commands, and the fire — the one place a schedule makes a job.

A fire is one transaction: a conditional UPDATE moves the schedule's `next_fire_at`
(and `due_at`) on from the values this replica read, then the job is inserted through
the state machine's create with its `(schedule, scheduled_for)` pair, which a unique
index holds once. The schedules due together share that transaction (`fire_many`): one
commit and one INSERT of jobs for all of them, so a burst is not fired one commit at a time. Of two replicas firing the same time, the loser's UPDATE matches no
row (PostgreSQL re-checks the WHERE after the winner's commit; SQLite writes one at a
time), so it inserts nothing; a replica killed mid-fire leaves no trace, and the
next one fires that time. Decisions other than a plain fire (missed times, a previous
run still live) are events in the schedule's history, written in the same transaction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, false, func, select, update
from sqlalchemy.exc import IntegrityError

from .. import jobs
from ..domain.schedule_policies import DEFAULT_MISFIRE, DEFAULT_OVERLAP, MISFIRE_POLICIES, OVERLAP_POLICIES
from ..domain.schedule_timing import BadTiming, Timing, zone
from ..domain.statuses import UNFINISHED
from ..domain.timeutil import isoformat, utcnow
from ..store.commit_hooks import after_commit
from ..store.extensions import db
from ..store.models import Job, Schedule, ScheduleEvent
from ..store.transaction import rows_changed, unit_of_work

FIRING_ACTOR = "scheduler"
SOURCES = ("code", "api")
log = logging.getLogger(__name__)

# A fire found up to this late is on time (a monitor busy for a moment); older ones were missed.
MISFIRE_GRACE = timedelta(seconds=60)
MISFIRE_ALL_CAP = 100  # `all` makes at most this many jobs for missed times; the older ones are skipped
MISFIRE_SCAN_LIMIT = 1000  # missed times looked at one by one in a fire; beyond, only the newest span
OVERLAP_WAIT_RECHECK = timedelta(seconds=1)  # how often a waiting fire looks at the previous run again
# The fields a schedule is made of; everything else in its JSON is derived or kept by the store.
SETTINGS = ("cron", "every_s", "timezone", "type", "payload", "priority", "max_attempts", "queue", "misfire", "overlap")
TIMING_FIELDS = ("cron", "every_s", "timezone")
# What a schedule is when a field is left out (`type` has no default).
DEFAULTS: dict[str, Any] = {
    "cron": None,
    "every_s": None,
    "timezone": "UTC",
    "payload": None,
    "priority": 0,
    "max_attempts": None,
    "queue": "default",
    "misfire": DEFAULT_MISFIRE,
    "overlap": DEFAULT_OVERLAP,
}
EVENT_KINDS = ("created", "changed", "paused", "resumed", "triggered", "skipped", "waiting", "missing", "restored")


class ScheduleNotFound(LookupError):
    pass


class ScheduleExists(Exception):
    pass


BadSchedule = BadTiming  # a bad field of a schedule; `field` names it


def timing_of(schedule: Schedule) -> Timing:
    return Timing(schedule.cron, schedule.every_s, schedule.timezone, schedule.created_at)


def _record(schedule_id: int, kind: str, message: str, *, actor: str, now: datetime, **extra: Any) -> None:
    db.session.execute(
        ScheduleEvent.__table__.insert().values(
            schedule_id=schedule_id, kind=kind, message=message, actor=actor, at=now, **extra
        )
    )


# The round that fires schedules in this process (webapp.monitor.schedule_round), told when
# one changes here: it sleeps until the next due fire, which the change may have moved.
_round_wakers: list[Callable[[], None]] = []


def wake_round_with(wake: Callable[[], None]) -> None:
    if wake not in _round_wakers:
        _round_wakers.append(wake)


def _wake_after_commit() -> None:
    for wake in _round_wakers:
        after_commit(wake)


def get(name: str) -> Schedule:
    schedule = db.session.scalar(select(Schedule).where(Schedule.name == name))
    if schedule is None:
        raise ScheduleNotFound(f"no schedule named {name!r}")
    return schedule


def all_schedules() -> list[Schedule]:
    return list(db.session.scalars(select(Schedule).order_by(Schedule.name)))


def check_settings(settings: dict[str, Any], anchor: datetime | None = None) -> Timing:
    for field, allowed in (("misfire", MISFIRE_POLICIES), ("overlap", OVERLAP_POLICIES)):
        if settings[field] not in allowed:
            raise BadSchedule(field, f"{field} is one of {', '.join(allowed)}")
    return Timing(settings["cron"], settings["every_s"], settings["timezone"], anchor or utcnow())


def create(name: str, settings: dict[str, Any], *, source: str, actor: str, now: datetime | None = None) -> Schedule:
    now = now or utcnow()
    values = {**DEFAULTS, **{field: value for field, value in settings.items() if value is not None}}
    timing = check_settings(values, now)
    first = timing.next_after(now)
    schedule = Schedule(
        name=name,
        **{field: values[field] for field in SETTINGS},
        paused=False,
        next_fire_at=first,
        due_at=first,
        source=source,
        missing_from_code=False,
        created_at=now,
        updated_at=now,
    )
    try:
        with unit_of_work():
            db.session.add(schedule)
            db.session.flush()
            _record(schedule.id, "created", f"created ({timing.in_words()})", actor=actor, now=now)
            _wake_after_commit()
    except IntegrityError:
        raise ScheduleExists(f"a schedule named {name!r} exists") from None
    return schedule


def change(name: str, changes: dict[str, Any], *, actor: str, now: datetime | None = None) -> Schedule:
    """Apply `changes` (fields of SETTINGS); a new "when" starts from now, missing nothing in between."""
    now = now or utcnow()
    with unit_of_work():
        schedule = get(name)
        values = {field: getattr(schedule, field) for field in SETTINGS}
        values.update(changes)
        if values["type"] is None:
            raise BadSchedule("type", "a schedule needs a type")
        for field, default in DEFAULTS.items():
            if values[field] is None and field not in ("cron", "every_s"):
                values[field] = default  # null puts a field back to its default
        if "cron" in changes and changes["cron"] is not None and "every_s" not in changes:
            values["every_s"] = None
        if "every_s" in changes and changes["every_s"] is not None and "cron" not in changes:
            values["cron"] = None
        timing = check_settings(values, schedule.created_at)
        retimed = any(values[field] != getattr(schedule, field) for field in TIMING_FIELDS)
        changed = [field for field in SETTINGS if values[field] != getattr(schedule, field)]
        for field in SETTINGS:
            setattr(schedule, field, values[field])
        if retimed:
            schedule.next_fire_at = schedule.due_at = timing.next_after(now)
        schedule.updated_at = now
        if changed:
            _record(schedule.id, "changed", f"changed {', '.join(changed)}", actor=actor, now=now)
        _wake_after_commit()
    return schedule


def remove(name: str) -> None:
    with unit_of_work():
        if rows_changed(db.session.execute(delete(Schedule).where(Schedule.name == name))) == 0:
            raise ScheduleNotFound(f"no schedule named {name!r}")


def set_paused(name: str, paused: bool, *, actor: str, now: datetime | None = None) -> Schedule:
    """Pause, or resume from now: times that passed while paused are not made up."""
    now = now or utcnow()
    with unit_of_work():
        schedule = get(name)
        if schedule.paused != paused:
            schedule.paused = paused
            if not paused:
                schedule.next_fire_at = schedule.due_at = timing_of(schedule).next_after(now)
            schedule.updated_at = now
            _record(
                schedule.id, "paused" if paused else "resumed", "paused" if paused else "resumed", actor=actor, now=now
            )
            _wake_after_commit()
    return schedule


def _job_spec(schedule: Schedule | Any, fire_time: datetime) -> dict[str, Any]:
    return {
        "type": schedule.type,
        "payload": schedule.payload,
        "priority": schedule.priority,
        "max_attempts": schedule.max_attempts,
        "queue": schedule.queue,
        "schedule": schedule.name,
        "scheduled_for": fire_time,
    }


def trigger(name: str, *, actor: str, now: datetime | None = None) -> Job:
    """Run once now, outside the timetable (its `scheduled_for` is now); overlap policy does not apply."""
    now = now or utcnow()
    with unit_of_work():
        schedule = get(name)
        job = jobs.create_jobs([_job_spec(schedule, now)], actor=actor)[0]
        _record(schedule.id, "triggered", f"triggered by {actor}: job {job.id}", actor=actor, now=now, job_id=job.id)
    return job


def live_runs(names: list[str]) -> dict[str, Any]:
    """Each schedule's newest run still pending, queued, claimed or running (id, status), by name."""
    if not names:
        return {}
    ranked = (
        select(
            Job.id,
            Job.status,
            Job.schedule,
            func.row_number().over(partition_by=Job.schedule, order_by=Job.id.desc()).label("rank"),
        )
        .where(Job.schedule.in_(names), Job.status.in_([str(s) for s in UNFINISHED]))
        .subquery()
    )
    rows = db.session.execute(select(ranked.c.id, ranked.c.status, ranked.c.schedule).where(ranked.c.rank == 1))
    return {row.schedule: row for row in rows}


def last_runs(names: list[str], count: int) -> dict[str, list[Any]]:
    """Each schedule's newest `count` jobs (id, status, scheduled_for), newest first."""
    if not names:
        return {}
    ranked = select(
        Job.id,
        Job.status,
        Job.schedule,
        Job.scheduled_for,
        func.row_number().over(partition_by=Job.schedule, order_by=Job.id.desc()).label("rank"),
    ).where(Job.schedule.in_(names))
    inner = ranked.subquery()
    rows = db.session.execute(select(inner).where(inner.c.rank <= count).order_by(inner.c.id.desc())).all()
    runs: dict[str, list[Any]] = {name: [] for name in names}
    for row in rows:
        runs[row.schedule].append(row)
    return runs


def history(schedule_id: int, limit: int = 50) -> list[ScheduleEvent]:
    return list(
        db.session.scalars(
            select(ScheduleEvent)
            .where(ScheduleEvent.schedule_id == schedule_id)
            .order_by(ScheduleEvent.id.desc())
            .limit(limit)
        )
    )


# --- firing ------------------------------------------------------------------------


FIRE_BATCH = 100  # schedules looked at per query of a round


def earliest(limit: int) -> list[Any]:
    """The `limit` schedules due soonest that are not paused, (id, due_at): one range of ix_schedules_due."""
    return list(db.session.execute(earliest_query(limit)).all())


def earliest_query(limit: int) -> Select[int, datetime]:
    return select(Schedule.id, Schedule.due_at).where(Schedule.paused == false()).order_by(Schedule.due_at).limit(limit)


@dataclass(frozen=True)
class _Plan:
    """What one fire does: the jobs to make, the schedule's new times, the history to write."""

    fire_times: list[datetime]
    next_fire_at: datetime
    due_at: datetime
    events: list[tuple[str, str, datetime | None]]  # kind, message, fire time


def _owed(timing: Timing, first: datetime, now: datetime) -> list[datetime]:
    """The fire times from `first` up to `now`; when there are more than the scan limit, the newest span."""
    owed: list[datetime] = []
    moment = first
    while moment <= now and len(owed) < MISFIRE_SCAN_LIMIT:
        owed.append(moment)
        moment = timing.next_after(moment)
    if moment <= now:  # more: look at the span ending now instead
        restart = now - (owed[-1] - owed[0])
        owed = [owed[0]]  # the oldest, for the history's "from"
        moment = timing.next_after(restart)
        while moment <= now:
            owed.append(moment)
            moment = timing.next_after(moment)
    return owed


def _stamp(moment: datetime, timezone: str) -> str:
    return moment.astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _plan(schedule: Any, now: datetime, live: Any) -> _Plan | None:
    """What firing `schedule` at `now` does; `live` is its newest unfinished run (None: there is none)."""
    timing = Timing(schedule.cron, schedule.every_s, schedule.timezone, schedule.created_at)
    owed = _owed(timing, schedule.next_fire_at, now)
    if not owed:
        return None
    following = timing.next_after(now)
    events: list[tuple[str, str, datetime | None]] = []
    on_time = [moment for moment in owed if now - moment <= MISFIRE_GRACE]
    missed = [moment for moment in owed if now - moment > MISFIRE_GRACE]
    firing: list[datetime] = list(on_time)
    if missed:
        if schedule.misfire == "all":
            keep = max(0, MISFIRE_ALL_CAP - len(firing))
            firing = missed[len(missed) - keep :] + firing if keep else firing
            dropped = missed[: len(missed) - keep]
        elif schedule.misfire == "run_once" and not on_time:
            firing = [missed[-1]]
            dropped = missed[:-1]
        else:
            dropped = missed
        if dropped:
            span = _stamp(dropped[0], schedule.timezone)
            if len(dropped) > 1:
                span += f" to {_stamp(dropped[-1], schedule.timezone)}"
            count = f"{len(dropped)} fire times" if len(dropped) > 1 else "fire time"
            events.append(
                (
                    "skipped",
                    f"skipped {count} {span}: missed (no replica ran), misfire policy {schedule.misfire}",
                    dropped[0],
                )
            )
    if firing and schedule.overlap != "allow" and live is not None:
        first = firing[0]
        said = f"{_stamp(first, schedule.timezone)}: previous run {live.id} still {live.status}"
        if schedule.overlap == "wait":
            # Owe the first time still: look again soon; the history says so once per time.
            if schedule.due_at == schedule.next_fire_at:
                events.append(("waiting", f"waiting {said}", first))
            return _Plan([], first, now + OVERLAP_WAIT_RECHECK, events)
        events.append(("skipped", f"skipped {said}", first))
        firing = []
    return _Plan(firing, following, following, events)


def fire(schedule_id: int, now: datetime | None = None) -> list[Job]:
    """Fire one schedule's owed times, once across replicas (see the module's docstring)."""
    return fire_many([schedule_id], now)


def fire_many(schedule_ids: list[int], now: datetime | None = None) -> list[Job]:
    """Fire these schedules' owed times in one transaction, each time once across replicas.

    Each schedule's compare-and-set UPDATE, then one INSERT of all their jobs and one of
    their history: the last of many due together does not wait for the others' commits.
    Rows are moved in id order, so replicas firing overlapping sets wait for each other
    instead of deadlocking. All or nothing: `fire_round` fires a failed batch one by one.
    """
    now = now or utcnow()
    table = Schedule.__table__
    rows = db.session.execute(select(table).where(table.c.id.in_(schedule_ids)).order_by(table.c.id)).all()
    due = [row for row in rows if not row.paused and row.due_at <= now]
    live = live_runs([row.name for row in due if row.overlap != "allow"])
    db.session.rollback()  # the reads' snapshot ends here: the writes below begin on their own
    plans = [(row, plan) for row in due if (plan := _plan(row, now, live.get(row.name))) is not None]
    if not plans:
        return []
    actor = f"{FIRING_ACTOR}:{os.getpid()}"  # which replica fired it
    specs: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    with unit_of_work():
        for schedule, plan in plans:
            moved = db.session.execute(
                update(table)
                .where(
                    and_(
                        table.c.id == schedule.id,
                        table.c.next_fire_at == schedule.next_fire_at,
                        table.c.due_at == schedule.due_at,
                        table.c.paused.is_(False),
                    )
                )
                .values(next_fire_at=plan.next_fire_at, due_at=plan.due_at)
            )
            if rows_changed(moved) == 0:
                continue  # another replica fired this time, or the schedule changed meanwhile
            specs.extend(_job_spec(schedule, moment) for moment in plan.fire_times)
            events.extend(
                {
                    "schedule_id": schedule.id,
                    "kind": kind,
                    "message": message,
                    "actor": actor,
                    "at": now,
                    "fire_time": at,
                }
                for kind, message, at in plan.events
            )
        made = jobs.create_jobs(specs, actor=actor)
        if events:
            db.session.execute(ScheduleEvent.__table__.insert(), events)
    return made


@dataclass(frozen=True)
class Round:
    made: int  # jobs made
    next_due: datetime | None  # when the earliest schedule not paused is due next (None: there is none)


def fire_round(now: datetime | None = None) -> Round:
    """Fire every due schedule and say when the next is due.

    A round with nothing due is one query. The schedules due in each batch fire together
    (`fire_many`), and each batch is followed by one more query (the schedules it fired are
    due again, maybe before the rest). Without a `now` given, each batch reads the clock
    again, so schedules that fell due while the last batch fired join the next at once. A
    batch that raises is fired again one schedule at a time, and a schedule whose own fire
    raises is logged and left for the next round: one broken row never holds up the others.
    """
    made = 0
    broken: set[int] = set()
    while True:
        moment = now or utcnow()
        rows = [row for row in earliest(FIRE_BATCH + len(broken)) if row.id not in broken]
        db.session.rollback()
        due = [row.id for row in rows if row.due_at <= moment]
        if not due:
            return Round(made, rows[0].due_at if rows else None)
        try:
            made += len(fire_many(due, moment))
            continue
        except Exception:
            db.session.rollback()
            log.warning("schedules: a batch of %d fires failed; firing them one at a time", len(due), exc_info=True)
        for schedule_id in due:
            try:
                made += len(fire(schedule_id, moment))
            except Exception:
                db.session.rollback()
                log.exception("schedule %d: fire failed; left for the next round", schedule_id)
                broken.add(schedule_id)


# --- the schedules code declares -----------------------------------------------------


def sync_declared(declared: list[dict[str, Any]], *, actor: str, now: datetime | None = None) -> dict[str, list[str]]:
    """Make the store's code schedules the declared ones: add new, change changed, and mark
    (never delete) those no longer declared. A stored API schedule of the same name is left alone."""
    now = now or utcnow()
    result: dict[str, list[str]] = {"created": [], "changed": [], "missing": [], "conflicts": []}
    names = {spec["name"] for spec in declared}
    for spec in declared:
        settings = {field: spec.get(field) for field in SETTINGS if field in spec}
        try:
            existing = get(spec["name"])
        except ScheduleNotFound:
            try:
                create(spec["name"], settings, source="code", actor=actor, now=now)
                result["created"].append(spec["name"])
            except ScheduleExists:
                pass  # another process declared it a moment ago
            continue
        db.session.rollback()
        if existing.source != "code":
            result["conflicts"].append(spec["name"])
            continue
        full = {field: settings.get(field, DEFAULTS.get(field)) for field in SETTINGS}
        if any(full[field] != getattr(existing, field) for field in SETTINGS):
            change(spec["name"], full, actor=actor, now=now)
            result["changed"].append(spec["name"])
        if existing.missing_from_code:
            _set_missing(spec["name"], False, actor=actor, now=now)
    for schedule in db.session.scalars(
        select(Schedule).where(Schedule.source == "code", Schedule.missing_from_code.is_(False))
    ).all():
        if schedule.name not in names:
            result["missing"].append(schedule.name)
    db.session.rollback()
    for name in result["missing"]:
        _set_missing(name, True, actor=actor, now=now)
    return result


def _set_missing(name: str, missing: bool, *, actor: str, now: datetime) -> None:
    with unit_of_work():
        schedule = get(name)
        schedule.missing_from_code = missing
        schedule.updated_at = now
        message = "no longer declared in code (kept: remove it to stop it)" if missing else "declared in code again"
        _record(schedule.id, "missing" if missing else "restored", message, actor=actor, now=now)


def schedule_json(schedule: Schedule, runs: list[Any] | None = None) -> dict[str, Any]:
    runs = runs or []
    last = runs[0] if runs else None
    return {
        "name": schedule.name,
        **{field: getattr(schedule, field) for field in SETTINGS},
        "description": timing_of(schedule).in_words(),
        "paused": bool(schedule.paused),
        "next_fire_at": isoformat(schedule.next_fire_at),
        "source": schedule.source,
        "missing_from_code": bool(schedule.missing_from_code),
        "created_at": isoformat(schedule.created_at),
        "updated_at": isoformat(schedule.updated_at),
        "last_job": (
            {"id": last.id, "status": last.status, "scheduled_for": isoformat(last.scheduled_for)} if last else None
        ),
    }
