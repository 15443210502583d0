"""The end-to-end rate through HTTP under gunicorn: 4 client processes, each a
loop of claim(batch) → its completes over the internal API with webapp.client, on
jobs created up front in bulk. As a worker does, the claim starts its jobs
(`start=true`: they come back running) and the completes go as one `/reports`
request, as a worker's coalesced reports do (webapp/worker/reports.py). Prints jobs per second and the p50/p99 latency of each
request as the client saw it; on PostgreSQL then procrastinate at the same number
of processes on the same server (benchmarks/store.py's run), in the same run.

Server: gunicorn with the project's gunicorn.conf.py settings (2 gthread workers
of 8 threads), the monitor off, on loopback.

    .venv/bin/python benchmarks/http_throughput.py
    .venv/bin/python benchmarks/http_throughput.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._support import (  # noqa: E402
    INTERNAL_KEY,
    add_database_prefix_option,
    app_config,
    postgres_database,
    running_server,
    server_cpu_seconds,
)
from benchmarks.store import procrastinate_python, run_procrastinate  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.client import JobwardenClient  # noqa: E402
from webapp.store.extensions import db  # noqa: E402
from webapp.worker.protocol import WorkerClient  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def client_loop(server_url: str, worker_id: str, batch: int, start, results) -> None:
    client = WorkerClient(server_url, internal_key=INTERNAL_KEY, retries=0, timeout=30)
    timings: dict[str, list[float]] = {"claim": [], "complete": []}
    done = 0
    start.wait()
    while True:
        clock = time.perf_counter()
        claimed = client.claim(worker_id, ["bench"], batch_size=batch, start=True)
        timings["claim"].append(time.perf_counter() - clock)
        if not claimed:
            break
        clock = time.perf_counter()
        answers = client.reports(
            [
                {"kind": "complete", "job_id": job["id"], "lease_token": job["lease_token"], "result": None}
                for job in claimed
            ]
        )
        timings["complete"].append(time.perf_counter() - clock)
        assert all(answer["code"] == 200 for answer in answers), answers
        done += len(claimed)
    results.put((done, time.perf_counter(), timings))


def measure(database_url: str, jobs_count: int, processes: int, batch: int, workdir: Path) -> float:
    app = create_app(app_config(database_url))
    with app.app_context():
        db.create_all()
        db.session.remove()
        db.engine.dispose()
    # 2 gthread workers of 8 threads (the test harness serves the same).
    with running_server(database_url, workdir / "server.log") as server:
        creator = JobwardenClient(server.url, retries=0, timeout=60)
        for offset in range(0, jobs_count, 1000):
            creator.create_many([{"type": "bench"}] * min(1000, jobs_count - offset))
        context = multiprocessing.get_context("spawn")
        start, results = context.Event(), context.Queue()
        workers = [
            context.Process(target=client_loop, args=(server.url, f"bench-{n}", batch, start, results))
            for n in range(processes)
        ]
        for worker in workers:
            worker.start()
        time.sleep(2)  # let the processes import and connect
        serving_before = server_cpu_seconds(server.process.pid)
        began = time.perf_counter()
        start.set()
        outcomes = [results.get(timeout=600) for _ in workers]
        serving = server_cpu_seconds(server.process.pid) - serving_before
        for worker in workers:
            worker.join()
    done = sum(o[0] for o in outcomes)
    elapsed = max(o[1] for o in outcomes) - began
    print(
        f"  {done} jobs by {processes} processes (claim batch {batch}) in {elapsed:.1f} s: {done / elapsed:.0f} jobs/s"
    )
    print(f"  the server's CPU (its gunicorn workers): {serving / done * 1000:.2f} ms per job")
    print("  (claim and start: one request; the completes: one /reports request per claimed batch)")
    for call in ("claim", "complete"):
        values = [v * 1000 for o in outcomes for v in o[2][call]]
        print(
            f"  {call:9} {len(values):6} calls  p50 {percentile(values, 50):6.1f} ms  "
            f"p99 {percentile(values, 99):6.1f} ms  mean {statistics.mean(values):6.1f} ms"
        )
    return done / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a throwaway database is made); default SQLite")
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--skip-procrastinate", action="store_true")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jobwarden-http-") as tmp, ExitStack() as stack:
        url = (
            stack.enter_context(postgres_database(args.database_url, args.database_prefix))
            if args.database_url
            else f"sqlite:///{Path(tmp) / 'http.db'}"
        )
        print(f"HTTP throughput on {url.split('@')[-1].split('///')[-1]}")
        ours = measure(url, args.jobs, args.processes, args.batch, Path(tmp))
    if args.database_url and not args.skip_procrastinate:
        python = procrastinate_python()
        with postgres_database(args.database_url, args.database_prefix) as url:
            theirs = run_procrastinate(python, url, args.processes, args.jobs)
        print(
            f"procrastinate on the same server, {args.processes} processes: {theirs.rate:.0f} jobs/s; "
            f"Jobwarden over HTTP / procrastinate = {ours / theirs.rate:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
