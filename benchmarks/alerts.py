"""What evaluating the alert rules adds to a monitor pass, at 1 M jobs and 100 rules.

Builds the store of benchmarks/monitor.py (--jobs jobs, finished ones spread over 13 days,
5,000 queued, 1,000 running), rolls up its hours, then in the same run times:
- the baseline: --passes monitor passes with no rule;
- `alerting.evaluate` alone with --rules rules of every kind, several windows and
  subjects (the rules' alerts fire on the first pass and stay firing: the steady state);
- monitor passes with those rules;
- interleaved with the evaluations, a fixed reference query (the 6 h failure-rate window
  read from the jobs table alone, as evaluation did before it read the rollups), so a
  loaded machine's slowdown shows in both and their ratio holds;
- on PostgreSQL, the server's own time for each statement of one evaluation (EXPLAIN
  ANALYZE), which a loaded machine disturbs less than the wall clock.
Target: evaluation ≤ 20 ms per pass. Prints the figures, the ratio to the target and to
the reference query, and the load average.

    .venv/bin/python benchmarks/alerts.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/alerts.py                      # SQLite (a file under /tmp)
    .venv/bin/python benchmarks/alerts.py --database-url sqlite:////tmp/NAME/jobs.db  # kept, reused

A SQLite file named by --database-url is kept: a later run over it skips the build (its jobs
age meanwhile; the roll-up catches up) and replaces the rules. On PostgreSQL, --keep does
the same with the database `<--database-prefix>_<--jobs>`, built once and never dropped, so
two trees' code can be timed alternately against one store:

    .venv/bin/python benchmarks/alerts.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --keep --database-prefix NAME
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, event, func, select  # noqa: E402

from benchmarks._support import add_database_prefix_option, app_config, kept_database  # noqa: E402
from benchmarks.monitor import database, keep_alive, percentile, populate, roll_up  # noqa: E402
from webapp import create_app, monitor  # noqa: E402
from webapp.domain.alerts import KIND_NAMES  # noqa: E402
from webapp.domain.statuses import Status  # noqa: E402
from webapp.domain.timeutil import utcnow  # noqa: E402
from webapp.jobs import alert_rules  # noqa: E402
from webapp.monitor.alerting import alert_settings, evaluate  # noqa: E402
from webapp.store.extensions import db  # noqa: E402
from webapp.store.models import Alert, AlertRule, Job  # noqa: E402

TARGET_MS = 20.0
WINDOWS = (300, 900, 3600, 6 * 3600)
SUBJECTS = {
    "failure_rate": ("*", "bench.other", "bench.work", "queue:default"),
    "queue_latency": ("*", "default", "gpu"),
    "no_worker": ("*", "bench.other"),
    "stalled": ("*", "bench.work"),
    "schedule_failing": ("*", "nightly"),
    "worker_deaths": ("*", "bench"),
}


def add_rules(count: int) -> None:
    for n in range(count):
        kind = KIND_NAMES[n % len(KIND_NAMES)]
        subjects = SUBJECTS[kind]
        window = WINDOWS[(n // len(KIND_NAMES)) % len(WINDOWS)]
        threshold = {"failure_rate": 0.2, "queue_latency": 60, "stalled": 30, "schedule_failing": 3}.get(kind, 1)
        alert_rules.add(
            kind,
            subjects[n % len(subjects)],
            threshold,
            window if kind in ("failure_rate", "worker_deaths") else 0,
            10 if kind == "failure_rate" else None,
        )


def reference_query() -> None:
    """The fixed yardstick: 6 h of finished jobs grouped from the jobs table (one index range)."""
    since = utcnow() - timedelta(hours=6)
    db.session.execute(
        select(Job.type, Job.queue, Job.status, func.count())
        .where(Job.status.in_((Status.COMPLETED, Status.FAILED)), Job.finished_at >= since)
        .group_by(Job.type, Job.queue, Job.status)
    ).all()
    db.session.commit()


def server_times(call) -> list[tuple[float, str]]:
    """PostgreSQL's execution time of each statement `call` runs (EXPLAIN ANALYZE of each, rolled back)."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "INSERT", "DELETE")):
            seen.append((statement, parameters[0] if executemany else parameters))  # one row's worth

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
        db.session.rollback()
    times = []
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        for statement, parameters in seen:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
            plan = cursor.fetchone()[0][0]
            times.append((plan["Planning Time"] + plan["Execution Time"], " ".join(statement.split())[:90]))
        connection.rollback()
    finally:
        connection.close()
    return times


def timed(call, passes: int) -> list[float]:
    times = []
    for _ in range(passes):
        keep_alive()
        clock = time.perf_counter()
        call()
        times.append((time.perf_counter() - clock) * 1000)
    return times


def summary(name: str, times: list[float]) -> str:
    return f"{name:<34} median {statistics.median(times):6.1f} ms   p95 {percentile(times, 0.95):6.1f} ms   max {max(times):6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument(
        "--keep", action="store_true", help="PostgreSQL: build the store once as <prefix>_<jobs>, reuse it"
    )
    add_database_prefix_option(parser)
    args = parser.parse_args()

    postgres = (args.database_url or "").startswith("postgresql")
    store = (
        kept_database(args.database_url, args.database_prefix, args.jobs)
        if postgres and args.keep
        else database(args.database_url, args.database_prefix)
    )
    with store as url:
        app = create_app(app_config(url))
        with app.app_context():
            db.create_all()
            if db.session.scalar(select(Job.id).limit(1)) is None:
                seconds = populate(args.jobs, 1_000)
                print(f"backend: {db.engine.dialect.name}; built {args.jobs:,} jobs in {seconds:.1f} s")
            else:
                print(f"backend: {db.engine.dialect.name}; reusing the jobs of {url}")
                db.session.execute(delete(Alert))
                db.session.execute(delete(AlertRule))
                db.session.commit()
            seconds, hours = roll_up()
            print(f"rolled up {hours:,} hours in {seconds:.1f} s")
            monitor.run_pass(trigger="manual")  # warms the pool and statement caches
            baseline = timed(lambda: monitor.run_pass(), args.passes)

            add_rules(args.rules)
            settings = alert_settings()

            changes = {"fired": 0, "resolved": 0, "renotified": 0}

            def evaluate_and_commit():
                outcome = evaluate(utcnow(), settings)
                db.session.commit()
                for name, ids in outcome.json().items():
                    changes[name] += len(ids)
                return outcome

            first = evaluate_and_commit()
            print(f"{args.rules} rules; first evaluation fired {len(first.fired)} alerts")
            changes.update(fired=0, resolved=0, renotified=0)
            reference_query()
            evaluation, reference = [], []
            for _ in range(args.passes):  # interleaved: the same load falls on both
                evaluation += timed(evaluate_and_commit, 1)
                reference += timed(reference_query, 1)
            print(f"during the timed evaluations: {changes}")
            with_rules = timed(lambda: monitor.run_pass(), args.passes)
            statements = (
                server_times(lambda: evaluate(utcnow(), settings)) if db.engine.dialect.name == "postgresql" else []
            )
            load = os.getloadavg()

    print()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (at the end of the timed runs)")
    print(summary("monitor pass, no rules (baseline)", baseline))
    print(summary(f"evaluate {args.rules} rules", evaluation))
    print(summary("reference query (6 h from jobs)", reference))
    print(summary(f"monitor pass with {args.rules} rules", with_rules))
    base, cost = statistics.median(baseline), statistics.median(evaluation)
    print(
        f"\nevaluation / baseline pass: {cost / base:.2f}×; pass with rules / baseline: {statistics.median(with_rules) / base:.2f}×"
    )
    print(f"evaluation / reference query (same load): {cost / statistics.median(reference):.2f}×")
    if statements:
        total = sum(ms for ms, _ in statements)
        print(
            f"\nPostgreSQL server time of one evaluation's {len(statements)} statements (EXPLAIN ANALYZE): {total:.1f} ms"
        )
        for ms, statement in sorted(statements, reverse=True)[:8]:
            print(f"  {ms:6.2f} ms  {statement}")
    verdict = "meets" if cost <= TARGET_MS else "misses"
    print(
        f"\nEVALUATION {cost:.1f} ms median per pass = {cost / TARGET_MS:.2f}× the {TARGET_MS:g} ms target: {verdict} it"
    )


if __name__ == "__main__":
    main()
