"""What webhook notifications cost the store: job lifecycles per second with an endpoint
registered, with none, and with the outbox hook switched off (the code before webhooks).

One process, in-process calls (no HTTP): each run builds a fresh database (SQLite: a temp
file, synchronous=FULL; PostgreSQL: a throwaway database), creates --jobs no-op jobs in
batches of 500, then times the loop `jobs.claim_jobs(batch_size=10)` → `start_job` →
`complete_job` until the queue is empty. Variants:

- off:      `webapp.states.notify_transition` replaced by a no-op (no outbox statement at all)
- none:     the outbox on, no endpoint registered (the INSERT … SELECT … WHERE EXISTS writes nothing)
- endpoint: one enabled endpoint subscribed to job.completed: every job writes a notification
            and a delivery row (the delivery loop does not run; sending is not the store's cost)

The variants run interleaved, --repeats times each, and the median is printed with the
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

from tests.support.databases import postgres_test_database

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
VARIANTS = ("off", "none", "endpoint")


@contextmanager
def fresh_database(backend: str, postgres: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"
    else:
        with postgres_test_database(postgres) as url:
            yield url


def run(database_url: str, variant: str, jobs_count: int) -> tuple[float, float]:
    """(job lifecycles per second, statements per job) for one variant on a fresh database."""
    from webapp import create_app, jobs, states
    from webapp.extensions import db
    from webapp.models import Job, WebhookNotification
    from webapp.webhooks import endpoints, outbox

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": database_url, "JOBWARDEN_MONITOR": False,
        "JOBWARDEN_INTERNAL_API_KEY": "benchmark", "SECRET_KEY": "benchmark",
        "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE": True,
    })
    states.notify_transition = (lambda *args: None) if variant == "off" else outbox.notify_transition
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
        begun = time.perf_counter()
        while batch := jobs.claim_jobs("bench", batch_size=10):
            for job in batch:
                jobs.start_job(job.id, job.lease_token)
                jobs.complete_job(job.id, job.lease_token)
        elapsed = time.perf_counter() - begun
        event.remove(db.engine, "before_cursor_execute", count)
        done = db.session.scalar(select(func.count()).select_from(Job).where(Job.status == "completed"))
        written = db.session.scalar(select(func.count()).select_from(WebhookNotification))
        expected = jobs_count if variant == "endpoint" else 0
        if done != jobs_count or written != expected:
            raise SystemExit(f"{variant}: {done} completed, {written} notifications; the run is not valid")
        db.session.remove()
        db.engine.dispose()
    return jobs_count / elapsed, statements / jobs_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        per_job: dict[str, float] = {}
        for _ in range(args.repeats):
            for variant in VARIANTS:
                with fresh_database(backend, args.postgres) as url:
                    rate, statements = run(url, variant, args.jobs)
                rates[variant].append(rate)
                per_job[variant] = statements
        baseline = statistics.median(rates["off"])
        print(f"\n{backend}, {args.jobs} jobs, median of {args.repeats}")
        print("| variant | lifecycles/s | vs off | statements per job | runs |")
        print("| --- | --- | --- | --- | --- |")
        for variant in VARIANTS:
            median = statistics.median(rates[variant])
            runs = ", ".join(f"{rate:.0f}" for rate in rates[variant])
            print(f"| {variant} | {median:.0f} | {100 * (median / baseline - 1):+.1f} % | {per_job[variant]:.2f} | {runs} |")


if __name__ == "__main__":
    main()
