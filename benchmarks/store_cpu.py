"""store.py's worker loop in one process, counted instead of timed: CPU per job, Python
calls per job and statements per job, for comparing two trees on a loaded machine.

Wall-clock rates on the shared machine swing 2x with the load (docs/benchmarks.md), so an
A/B of two checkouts reads what the load does not move: the process's own CPU time and,
with --calls, the number of Python function calls (cProfile's count, the same on every
run). It runs on the checkout it is started from (the current directory), so the same
file measures an older tree: `cd ../wt-old && .venv/bin/python ../wt-house/benchmarks/store_cpu.py`.
Trees before the restructure kept the engine in `webapp.extensions` and had no
benchmarks/_support.py (whose own imports need today's tree), so this file imports neither
from the tree it measures beyond `webapp`, and makes its throwaway PostgreSQL database itself.

The loop is store.py's: --jobs no-op jobs created up front, then claim 10, start them and
complete them (--reports batched: one transaction each; single: each commits alone) until
the queue is empty. SQLite runs with synchronous=OFF here: the fsync is the disk's time,
not the code's.

    .venv/bin/python benchmarks/store_cpu.py --jobs 500 --reports single --calls
    .venv/bin/python benchmarks/store_cpu.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

sys.path.insert(0, os.getcwd())

from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from webapp import create_app, jobs  # noqa: E402

try:
    from webapp.store.extensions import db  # noqa: E402
except ImportError:  # a tree before the restructure (3c0d808 and older)
    from webapp.extensions import db  # type: ignore[no-redef]  # noqa: E402


@contextmanager
def database(postgres_url: str | None, prefix: str) -> Iterator[str]:
    """A SQLite file of its own, or a throwaway database on the PostgreSQL server, dropped after."""
    if not postgres_url:
        with tempfile.TemporaryDirectory(prefix="jobwarden-bench-") as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default=None, help="a PostgreSQL server to make a throwaway database on")
    parser.add_argument("--database-prefix", default="jobwarden_bench", help="the throwaway database's name starts so")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--reports", choices=("batched", "single"), default="batched")
    parser.add_argument("--calls", action="store_true", help="count Python calls with cProfile (slower, exact)")
    args = parser.parse_args()
    with database(args.postgres_url, args.database_prefix) as url:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": url,
                "JOBWARDEN_MONITOR": False,
                "JOBWARDEN_SQLITE_SYNCHRONOUS": "OFF",
                "JOBWARDEN_INTERNAL_API_KEY": "benchmark-internal-key",
                "SECRET_KEY": "benchmark",
            }
        )
        with app.app_context():
            db.create_all()
            for offset in range(0, args.jobs, 500):
                jobs.create_jobs([{"type": "bench.noop"} for _ in range(min(500, args.jobs - offset))])
            db.session.remove()
            statements = 0

            def count(*_args) -> None:
                nonlocal statements
                statements += 1

            event.listen(db.engine, "before_cursor_execute", count)
            profile = cProfile.Profile() if args.calls else None
            cpu, wall = time.process_time(), time.monotonic()
            if profile:
                profile.enable()
            done = 0
            while batch := jobs.claim_jobs("bench-0", batch_size=10):
                if args.reports == "batched":
                    jobs.start_jobs([jobs.StartReport(job.id, job.lease_token) for job in batch])
                    jobs.complete_jobs([jobs.CompleteReport(job.id, job.lease_token) for job in batch])
                else:
                    for job in batch:
                        jobs.start_job(job.id, job.lease_token)
                        jobs.complete_job(job.id, job.lease_token)
                done += len(batch)
            if profile:
                profile.disable()
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            event.remove(db.engine, "before_cursor_execute", count)
            calls = f"  {pstats.Stats(profile).total_calls / done:.0f} Python calls/job" if profile else ""
            print(
                f"{os.path.basename(os.getcwd())} {db.engine.dialect.name} {args.reports}: {done} jobs, "
                f"CPU {1000 * cpu / done:.3f} ms/job, wall {1000 * wall / done:.2f} ms/job, "
                f"{statements / done:.2f} statements/job{calls}",
                flush=True,
            )
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
