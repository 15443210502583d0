"""Schedules with 10,000 in the store: the scheduler's cost per wake-up and fire latency.

1. Seed: --schedules schedules that stay idle through the run (every 86,400 s; inserted in
   one statement with the rows the store's `create` writes, which would take minutes one
   by one), then --measured schedules every --every-s seconds through `schedules.create`.
2. A wake-up (in this process): `schedules.fire_round()` with nothing due, --rounds times,
   as the monitor's schedule round calls it; printed: the statements one sends (counted on
   the engine) and its time p50/p99, and the plan of its query (PostgreSQL `EXPLAIN`, SQLite
   `EXPLAIN QUERY PLAN`), which must name ix_schedules_due.
3. Fire latency: a server with `jobwarden serve`'s settings and the monitor on (the schedule
   round runs in it, waking for the next due fire) for --seconds; for every job a measured
   schedule made, the store's `created_at` minus the fire time it ran for (`scheduled_for`),
   both on this machine's clock. p50/p99/max printed against the 1 s target (issue 25).

No peer runs beside it: the figures are held against the issue's targets.

    .venv/bin/python benchmarks/schedules.py
    .venv/bin/python benchmarks/schedules.py --backends sqlite --seconds 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text  # noqa: E402

from benchmarks._support import (  # noqa: E402
    DEFAULT_POSTGRES,
    add_database_prefix_option,
    app_config,
    fresh_database,
    running_server,
    statements_run,
)
from webapp import create_app  # noqa: E402
from webapp.domain.timeutil import utcnow  # noqa: E402
from webapp.jobs import schedules  # noqa: E402
from webapp.store.extensions import db  # noqa: E402
from webapp.store.models import Job, Schedule  # noqa: E402

IDLE_EVERY_S = 86_400
MEASURED_PREFIX = "measured-"
TARGET_S = 1.0


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def seed(count: int, measured: int, every_s: int) -> None:
    now = utcnow()
    first = now + timedelta(seconds=IDLE_EVERY_S)
    rows = [
        {
            **{field: schedules.DEFAULTS.get(field) for field in schedules.SETTINGS},
            "name": f"idle-{number:05d}",
            "every_s": IDLE_EVERY_S,
            "type": "bench.noop",
            "paused": False,
            "next_fire_at": first,
            "due_at": first,
            "source": "api",
            "missing_from_code": False,
            "created_at": now,
            "updated_at": now,
        }
        for number in range(count - measured)
    ]
    db.session.execute(insert(Schedule), rows)
    db.session.commit()
    for number in range(measured):
        schedules.create(
            f"{MEASURED_PREFIX}{number:02d}", {"type": "bench.noop", "every_s": every_s}, source="api", actor="bench"
        )
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE schedules"))
        db.session.commit()


def wake_up_cost(rounds: int) -> None:
    durations = []
    with statements_run(db.engine) as statements:
        for _ in range(rounds):
            begun = time.perf_counter()
            fired = schedules.fire_round(utcnow() - timedelta(hours=1))  # nothing is due an hour ago
            durations.append(time.perf_counter() - begun)
            assert fired.made == 0 and fired.next_due is not None
    per_round = len(statements) / rounds
    print(
        f"  wake-up with nothing due: {per_round:.1f} statement(s), "
        f"p50 {percentile(durations, 50) * 1000:.2f} ms  p99 {percentile(durations, 99) * 1000:.2f} ms  ({rounds} rounds)",
        flush=True,
    )
    query = schedules.earliest_query(schedules.FIRE_BATCH).compile(
        dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}
    )
    if db.engine.dialect.name == "postgresql":
        plan = db.session.execute(text(f"EXPLAIN {query}")).scalars().all()
    else:
        plan = [row[-1] for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {query}"))]
    db.session.rollback()
    for line in plan:
        print(f"    plan: {line}", flush=True)
    print(f"  the query uses ix_schedules_due: {'ix_schedules_due' in ' '.join(plan)}", flush=True)


def fire_latency(url: str, backend: str, args: argparse.Namespace, logs: Path) -> None:
    with running_server(url, logs / f"server-{backend}.log", deployed=True, JOBWARDEN_MONITOR="on"):
        # Fire times before the server answered measure its start, not the round: from a second after.
        measured_from = utcnow() + timedelta(seconds=1)
        time.sleep(args.seconds)
        measured_to = utcnow()
    rows = db.session.execute(
        select(Job.created_at, Job.scheduled_for).where(
            Job.schedule.like(f"{MEASURED_PREFIX}%"), Job.scheduled_for >= measured_from
        )
    ).all()
    db.session.rollback()
    latencies = [(created - due).total_seconds() for created, due in rows]
    owed = args.measured * int((measured_to - measured_from).total_seconds() // args.every_s)
    print(f"  fires made {len(latencies)}, owed at least {owed} over the run", flush=True)
    late = [value for value in latencies if value > TARGET_S]
    print(
        f"  fire latency ({len(latencies)} fires of {args.measured} schedules every {args.every_s} s, "
        f"{args.schedules} schedules in all): p50 {percentile(latencies, 50) * 1000:.0f} ms  "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms  max {max(latencies) * 1000:.0f} ms; "
        f"p99 / target {percentile(latencies, 99) / TARGET_S:.2f}; over 1 s: {len(late)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    parser.add_argument("--schedules", type=int, default=10_000, help="schedules in the store (default 10,000)")
    parser.add_argument("--measured", type=int, default=20, help="of them, firing during the run (default 20)")
    parser.add_argument("--every-s", type=int, default=10, help="the measured schedules' period (default 10 s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the server runs (default 60 s)")
    parser.add_argument("--rounds", type=int, default=200, help="timed wake-ups (default 200)")
    parser.add_argument("--logs", default=None, help="keep the servers' logs in this directory")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        postgres = args.postgres if backend == "postgresql" else None
        with fresh_database(postgres, args.database_prefix) as url, tempfile.TemporaryDirectory() as scratch:
            print(f"{backend}:", flush=True)
            app = create_app(app_config(url))
            with app.app_context():
                db.create_all()
                seed(args.schedules, args.measured, args.every_s)
                wake_up_cost(args.rounds)
                fire_latency(url, backend, args, Path(args.logs or scratch))
                db.session.remove()
                db.engine.dispose()


if __name__ == "__main__":
    main()
