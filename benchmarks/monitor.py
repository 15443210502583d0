"""What one health-monitor pass costs on a big store, and proof that its scans use indexes.

Builds a store of --jobs jobs (default 1,000,000) of which --running are running
with fresh heartbeats, the rest spread over the other statuses and the last 13
days (so nothing is orphaned, stale or due for pruning), with set-based SQL
(INSERT … SELECT over generate_series / a recursive CTE), then times --passes
passes of `monitor.run_pass` and prints EXPLAIN for every scan a pass runs.
Target: a pass ≤ 20 ms when nothing is orphaned.

    .venv/bin/python benchmarks/monitor.py                       # SQLite (a file under /tmp)
    .venv/bin/python benchmarks/monitor.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

On PostgreSQL a throwaway database is created beside the one named and dropped afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from benchmarks._support import (  # noqa: E402
    DEFAULT_DATABASE_PREFIX,
    add_database_prefix_option,
    app_config,
    postgres_database,
)
from webapp import create_app, jobs, monitor  # noqa: E402
from webapp.domain.alerts import DEFAULT_RULES  # noqa: E402
from webapp.domain.timeutil import utcnow  # noqa: E402
from webapp.store.extensions import db  # noqa: E402
from webapp.store.models import AlertRule  # noqa: E402

TARGET_MS = 20.0
QUEUED, PENDING, FAILED, CANCELLED = 5_000, 1_000, 20_000, 20_000
WORKERS = 10

# One row per n: the first `running` rows run, then bands of the other statuses, the rest completed.
# {age} stands for "now minus (n mod 13 days) seconds", {recent} for "now minus 60 s". Each status
# carries the times the store gives it: finished jobs a finish time within the retention days,
# cancelled ones no heartbeat (nothing holds their lease), pending ones a recent creation; a
# finished job was last updated when it finished, the others a minute ago.
ROWS = """
SELECT n,
  CASE WHEN status = 'running' THEN 'bench.work' ELSE 'bench.other' END,
  status,
  0,
  CASE WHEN status IN ('queued', 'pending') THEN 0 ELSE 1 END,
  3,
  CASE WHEN status = 'running' THEN 'bench-w' || (n % {workers}) END,
  CASE WHEN status = 'running' THEN 'lease' || n END,
  CASE WHEN status = 'running' THEN {recent} WHEN status IN ('completed', 'failed') THEN {age} END,
  {recent},
  CASE WHEN status IN ('running', 'pending') THEN {recent} ELSE {age} END,
  CASE WHEN status = 'running' THEN {recent} WHEN status IN ('completed', 'failed') THEN {age} END,
  CASE WHEN status = 'running' THEN {recent} WHEN status IN ('completed', 'failed') THEN {age} END,
  CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN {age} END,
  CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN {age} ELSE {recent} END,
  CASE WHEN status = 'completed' THEN 0 END,
  {false}
FROM (
  SELECT n, CASE
    WHEN n <= :running THEN 'running'
    WHEN n <= :b_queued THEN 'queued'
    WHEN n <= :b_pending THEN 'pending'
    WHEN n <= :b_failed THEN 'failed'
    WHEN n <= :b_cancelled THEN 'cancelled'
    ELSE 'completed' END AS status
  FROM {series}
) AS numbered
"""
COLUMNS = (
    "id, type, status, priority, attempt, max_attempts, worker_id, lease_token, heartbeat_at, run_after, "
    "created_at, claimed_at, started_at, finished_at, updated_at, exit_code, cancel_requested"
)


def populate(
    total: int,
    running: int,
    *,
    queued: int = QUEUED,
    pending: int = PENDING,
    failed: int = FAILED,
    cancelled: int = CANCELLED,
) -> float:
    """Fill the jobs table with set-based SQL (the bands' sizes in id order, the rest completed);
    returns seconds taken."""
    clock = time.perf_counter()
    dialect = db.engine.dialect.name
    now = utcnow().replace(tzinfo=None)
    bands = {"running": running}
    edge = running
    for name, size in (("b_queued", queued), ("b_pending", pending), ("b_failed", failed), ("b_cancelled", cancelled)):
        edge += size
        bands[name] = edge
    if dialect == "postgresql":
        sql = ROWS.format(
            workers=WORKERS,
            false="false",
            age="CAST(:now AS timestamp) - make_interval(secs => n % 1123200)",
            recent="CAST(:now AS timestamp) - interval '60 seconds'",
            series="generate_series(1, :total) AS n",
        )
        statement = f"INSERT INTO jobs ({COLUMNS}) {sql}"
    else:
        stamp = "strftime('%Y-%m-%d %H:%M:%S', :now, {shift}) || '.000000'"
        sql = ROWS.format(
            workers=WORKERS,
            false="0",
            age=stamp.format(shift="'-' || (n % 1123200) || ' seconds'"),
            recent=stamp.format(shift="'-60 seconds'"),
            series="seq",
        )
        statement = (
            f"INSERT INTO jobs ({COLUMNS}) WITH RECURSIVE seq(n) AS "
            f"(SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :total) {sql}"
        )
    db.session.execute(text(statement), {"total": total, "now": now.isoformat(sep=" "), **bands})
    db.session.execute(
        text(
            "INSERT INTO workers (id, hostname, pid, concurrency, started_at, last_seen_at, state) "
            "VALUES " + ", ".join(f"('bench-w{i}', 'bench', {i}, 100, :now, :now, 'alive')" for i in range(WORKERS))
        ),
        {"now": now},
    )
    # The rules a fresh install watches (the migration seeds them; create_all does not).
    db.session.add_all(
        AlertRule(
            kind=rule.kind,
            subject=rule.subject,
            threshold=rule.threshold,
            window_s=rule.window_s,
            min_jobs=rule.min_jobs,
            created_at=utcnow(),
        )
        for rule in DEFAULT_RULES
    )
    db.session.commit()
    db.session.execute(text("ANALYZE jobs" if dialect == "postgresql" else "ANALYZE"))
    db.session.commit()
    return time.perf_counter() - clock


def roll_up() -> tuple[float, int]:
    """The hourly rollups /stats reads, up to date as the monitor keeps them; seconds taken and hours."""
    clock = time.perf_counter()
    hours = 0
    while rolled := jobs.roll_up(utcnow()):
        hours += rolled
    return time.perf_counter() - clock, hours


def keep_alive() -> None:
    """What the workers do between passes: fresh heartbeats on every running job and worker."""
    now = utcnow().replace(tzinfo=None)
    db.session.execute(text("UPDATE jobs SET heartbeat_at = :now WHERE status = 'running'"), {"now": now})
    db.session.execute(text("UPDATE workers SET last_seen_at = :now"), {"now": now})
    db.session.commit()


def explain(statement) -> str:
    dialect = db.engine.dialect
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    if dialect.name == "postgresql":
        rows = db.session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}"))
        plan = "\n".join(f"    {row[0]}" for row in rows)
    else:
        rows = db.session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
        plan = "\n".join(f"    {row[3]}" for row in rows)
    db.session.rollback()
    return f"  {' '.join(sql.split())}\n{plan}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


@contextmanager
def database(url: str | None, prefix: str = DEFAULT_DATABASE_PREFIX) -> Iterator[str]:
    """A throwaway database on a PostgreSQL server URL; a SQLite URL as given; else a SQLite file in a temporary directory."""
    if url is None or not url.startswith("postgresql"):
        with tempfile.TemporaryDirectory(prefix="jobwarden-bench-") as directory:
            yield url or f"sqlite:///{directory}/bench.db"
        return
    with postgres_database(url, prefix) as private:
        yield private


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--running", type=int, default=1_000)
    parser.add_argument("--passes", type=int, default=50)
    parser.add_argument(
        "--queued", type=int, default=QUEUED, help=f"queued jobs among them (default {QUEUED:,}; a backlog: 900,000)"
    )
    add_database_prefix_option(parser)
    args = parser.parse_args()

    with database(args.database_url, args.database_prefix) as url:
        app = create_app(app_config(url))
        with app.app_context():
            db.create_all()
            backend = db.engine.dialect.name
            seconds = populate(args.jobs, args.running, queued=args.queued)
            counts = monitor.health_report()["counts"]
            print(
                f"backend: {backend}; built {args.jobs:,} jobs in {seconds:.1f} s; counts (capped at "
                f"{monitor.COUNT_CAP:,}): {counts}"
            )
            # The hours before the last one were rolled up by earlier passes, as in a running deployment.
            seconds, hours = roll_up()
            print(f"rolled up {hours:,} hours of finished jobs in {seconds:.1f} s")

            keep_alive()
            print("\nEXPLAIN of each scan a pass runs:")
            for name, statement in monitor.scans().items():
                print(f"- {name}:\n{explain(statement)}")

            keep_alive()
            warm_up = monitor.run_pass(trigger="manual")  # warms the pool and statement caches
            wall, recorded, changed = [], [], warm_up["changed"] + len(warm_up["late"])
            for _ in range(args.passes):
                keep_alive()
                clock = time.perf_counter()
                result = monitor.run_pass()
                wall.append((time.perf_counter() - clock) * 1000)
                recorded.append(result["duration_ms"])
                changed += result["changed"] + len(result["late"])
            clock = time.perf_counter()
            monitor.health_report()
            report_ms = (time.perf_counter() - clock) * 1000

        median, p95, worst = statistics.median(wall), percentile(wall, 0.95), max(wall)
        print(f"\n{args.passes} passes over {args.jobs:,} jobs ({args.running:,} running), changed or late: {changed}")
        print(
            f"  pass, wall clock: median {median:.2f} ms, p95 {p95:.2f} ms, max {worst:.2f} ms "
            f"(target {TARGET_MS:.0f} ms: median is {median / TARGET_MS:.0%} of it)"
        )
        print(f"  pass, as recorded in monitor_passes: median {statistics.median(recorded):.2f} ms")
        print(f"  health_report (counts capped at {monitor.COUNT_CAP:,}): {report_ms:.1f} ms")
        if changed:
            sys.exit("a pass changed or flagged something on a store where nothing is stuck")


if __name__ == "__main__":
    main()
