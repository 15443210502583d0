"""What webhook notifications cost the store: job lifecycles per second with an endpoint
registered, with none, and with the outbox hook switched off (the code before webhooks).

One process, in-process calls (no HTTP): each run builds a fresh database (SQLite: a temp
file, synchronous=FULL; PostgreSQL: a throwaway database), creates --jobs no-op jobs in
batches of 500, then times the loop `jobs.claim_jobs(batch_size=10)` → `start_job` →
`complete_job` until the queue is empty. Variants:

- off:      no outbox listening to the store's moves (`webapp.store.moves.set_outbox(None)`: no outbox write at all)
- none:     the outbox on, no endpoint registered (the INSERT … SELECT … WHERE EXISTS writes nothing;
            on PostgreSQL a CTE of the transition's own statement, on SQLite a statement of its own)
- endpoint: one enabled endpoint subscribed to job.completed: every job writes a notification
            and a delivery row (the delivery loop does not run; sending is not the store's cost)

The variants run interleaved, --repeats times each. Printed per variant: the best and the
median rate (on a shared, loaded machine the best run is the least disturbed one), this
process's CPU time per job (Python and driver work, not the database server's), and the
SQL statements per job (SQLAlchemy's before_cursor_execute).

    .venv/bin/python benchmarks/webhooks.py
    .venv/bin/python benchmarks/webhooks.py --backends sqlite --jobs 500 --repeats 3
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, func, select

from benchmarks._support import DEFAULT_POSTGRES, add_database_prefix_option, postgres_database

VARIANTS = ("off", "none", "endpoint")


@contextmanager
def fresh_database(backend: str, postgres: str, prefix: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"
    else:
        with postgres_database(postgres, prefix) as url:
            yield url


def run(database_url: str, variant: str, jobs_count: int, synchronous: str) -> tuple[float, float, float]:
    """(job lifecycles per second, CPU ms per job, statements per job) for one variant on a fresh database."""
    from webapp import create_app, jobs
    from webapp.store import moves
    from webapp.store.extensions import db
    from webapp.store.models import Job, WebhookNotification
    from webapp.webhooks import endpoints, outbox

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "JOBWARDEN_MONITOR": False,
            "JOBWARDEN_INTERNAL_API_KEY": "benchmark-internal-key",
            "SECRET_KEY": "benchmark",
            "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE": True,
            "JOBWARDEN_SQLITE_SYNCHRONOUS": synchronous,
        }
    )
    moves.set_outbox(None if variant == "off" else outbox.TransitionOutbox())
    with app.app_context():
        db.create_all()
        if variant == "endpoint":
            endpoints.create("http://127.0.0.1:9/hook", ["job.completed"])
        for offset in range(0, jobs_count, 500):
            jobs.create_jobs([{"type": "bench.noop"} for _ in range(min(500, jobs_count - offset))])
        statements = 0

        def count(*_args) -> None:
            nonlocal statements
            statements += 1

        event.listen(db.engine, "before_cursor_execute", count)
        begun, cpu = time.perf_counter(), time.process_time()
        while batch := jobs.claim_jobs("bench", batch_size=10):
            for job in batch:
                jobs.start_job(job.id, job.lease_token)
                jobs.complete_job(job.id, job.lease_token)
        elapsed, cpu = time.perf_counter() - begun, time.process_time() - cpu
        event.remove(db.engine, "before_cursor_execute", count)
        done = db.session.scalar(select(func.count()).select_from(Job).where(Job.status == "completed"))
        written = db.session.scalar(select(func.count()).select_from(WebhookNotification))
        expected = jobs_count if variant == "endpoint" else 0
        if done != jobs_count or written != expected:
            raise SystemExit(f"{variant}: {done} completed, {written} notifications; the run is not valid")
        db.session.remove()
        db.engine.dispose()
    return jobs_count / elapsed, 1000 * cpu / jobs_count, statements / jobs_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--synchronous", default="FULL", help="SQLite: FULL (the default) or NORMAL")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        cpu: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        per_job: dict[str, float] = {}
        for _ in range(args.repeats):
            for variant in VARIANTS:
                with fresh_database(backend, args.postgres, args.database_prefix) as url:
                    rate, cpu_ms, statements = run(url, variant, args.jobs, args.synchronous)
                rates[variant].append(rate)
                cpu[variant].append(cpu_ms)
                per_job[variant] = statements
        best_off, cpu_off = max(rates["off"]), statistics.median(cpu["off"])
        mode = f" synchronous={args.synchronous}" if backend == "sqlite" else ""
        print(f"\n{backend}{mode}, {args.jobs} jobs, {args.repeats} runs per variant", flush=True)
        print("| variant | best /s | vs off | median /s | CPU ms per job | vs off | statements per job |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for variant in VARIANTS:
            best, cpu_ms = max(rates[variant]), statistics.median(cpu[variant])
            print(
                f"| {variant} | {best:.0f} | {100 * (best / best_off - 1):+.1f} % | "
                f"{statistics.median(rates[variant]):.0f} | {cpu_ms:.2f} | {100 * (cpu_ms / cpu_off - 1):+.1f} % | "
                f"{per_job[variant]:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
