"""Server time and memory of the jobs dashboard on a big store, beside rq-dashboard on Redis.

For each backend (SQLite, PostgreSQL) and each store size (--sizes, default
100,000 and 1,000,000 jobs, built with set-based SQL by benchmarks/monitor.py's
`populate`: 1,000 running, 5,000 queued (or --queued: a backlog), 1,000 pending, 20,000
failed, 20,000 cancelled, the rest completed, the unfinished ones the oldest ids) it times, with
the Flask test client in-process (server time: routing, queries, template; no
socket, no HTTP parsing), --requests requests of each page after --warm-up:

- `/jobs` (the full page: first page of 50, filter bar, bulk-action form),
  unfiltered and `?status=failed`;
- the HTMX poll of it (`HX-Request: true`: the table region only), unfiltered,
  `?status=failed` and `?status=queued&status=running` (two statuses ticked);
- `/jobs/counts` (the capped counts per status, polled with the table);
- a job page and its poll, the newest queued job's page, `/health` and its poll, `/queues`
  and its poll, `/stats` over 1 h and 7 d.

Every request says `Accept-Encoding: gzip`, as browsers do. It prints p50/p95/max,
the bytes of each answer on the wire (gzipped) and uncompressed, and EXPLAIN of every query
a page ran (captured from the engine while one request ran). Target: p95 ≤ 50 ms
at 1,000,000 jobs.

With --through gunicorn the same pages are timed end to end over HTTP (one keep-alive
connection, after warm-up requests on fresh connections so that every worker has served
every page) from a real server with the package's settings (`jobwarden serve`: 2 gthread
workers, the monitor in the master), and then the resident memory of its processes is
read from /proc: RSS (what `ps` shows; a forked worker counts the pages it shares with
the master), PSS (shared pages divided among their sharers) and USS (its own pages).
Targets at 1,000,000 jobs (issue 29): the full `/jobs` page and `?status=failed` p95 ≤ 25 ms,
the poll p95 ≤ 10 ms; a worker ≤ 60 MiB resident.

rq-dashboard (pinned below, installed into benchmarks/.venv-rq-dashboard on first
use, never a Jobwarden dependency) is run in the same run by
benchmarks/rq_dashboard_side.py against Redis db --redis-db (flushed before and
after; no other db is touched) holding --rq-jobs queued RQ jobs: its jobs-list
JSON (50 per page, what its page polls) and its jobs page, timed the same way.
The ratio printed is Jobwarden's poll p50 over rq-dashboard's JSON p50.

    .venv/bin/python benchmarks/dashboard.py
    .venv/bin/python benchmarks/dashboard.py --backends sqlite --sizes 100000 --skip-rq
    .venv/bin/python benchmarks/dashboard.py --sizes 100000 --skip-rq --pages /stats
    .venv/bin/python benchmarks/dashboard.py --backends postgresql --sizes 1000000 --through gunicorn --no-explain

--keep builds each PostgreSQL store once, as `<--database-prefix>_<size>`, and keeps it: a
later run with --keep reuses it (only the rollups are brought up to date), so a 1,000,000 or
10,000,000-job store is built once for many runs (drop it by hand). --serve-checkout DIR
serves another checkout's code (say a worktree of main) through gunicorn against the same
store, for a baseline measured in the same run:

    .venv/bin/python benchmarks/dashboard.py --backends postgresql --sizes 1000000 --keep --through gunicorn \
        --no-explain --skip-rq --serve-checkout ../main-checkout
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor import QUEUED, database, percentile, populate, roll_up  # noqa: E402  (benchmarks/monitor.py)
from sqlalchemy import text  # noqa: E402

from benchmarks._support import (  # noqa: E402
    DEFAULT_POSTGRES,
    add_database_prefix_option,
    kept_database,
    running_server,
    statements_run,
)
from webapp import create_app  # noqa: E402
from webapp.store.extensions import db  # noqa: E402

TARGET_MS = 50.0
WORKER_TARGET_MIB = 60.0
# rq-dashboard 0.9.0 imports six without declaring it; rq and redis pinned to what it ran with here.
RQ_PINS = ("rq-dashboard==0.9.0", "rq==3.0.0", "redis==8.1.0", "six==1.17.0")
RQ_VENV = ROOT / "benchmarks" / ".venv-rq-dashboard"
RQ_SIDE = ROOT / "benchmarks" / "rq_dashboard_side.py"
HTMX = {"HX-Request": "true"}
GZIP = {"Accept-Encoding": "gzip"}
PAGES = (
    ("/jobs page", "/jobs", {}),
    ("/jobs page ?status=failed", "/jobs?status=failed", {}),
    ("poll", "/jobs", HTMX),
    ("poll ?status=failed", "/jobs?status=failed", HTMX),
    ("poll ?status=queued&status=running", "/jobs?status=queued&status=running", HTMX),
    ("/jobs/counts", "/jobs/counts", HTMX),
    ("job page (a failed job)", "/jobs/{failed_id}", {}),
    ("poll of a job page", "/jobs/{failed_id}", HTMX),
    ("job page (a queued job, the newest)", "/jobs/{queued_id}", {}),
    ("/queues", "/queues", {}),
    ("poll of /queues", "/queues", HTMX),
    ("/health", "/health", {}),
    ("poll of /health", "/health", HTMX),
    ("/stats (1 h)", "/stats", {}),
    ("/stats?window=7d", "/stats?window=7d", {}),
)


def explain(statement: str, parameters) -> str:
    """The plan of one captured statement, run again through the raw DB-API connection."""
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        if db.engine.dialect.name == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) " + statement, parameters)
            lines = [row[0] for row in cursor.fetchall()]
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            lines = [row[3] for row in cursor.fetchall()]
        connection.rollback()
    finally:
        connection.close()
    return "\n".join(f"      {line}" for line in lines)


def time_page(client, path: str, headers: dict, requests: int, warm_up: int) -> dict:
    headers = {**headers, **GZIP}
    for _ in range(warm_up):
        answer = client.get(path, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"{path} answered {answer.status_code}: {answer.get_data(as_text=True)[:300]}")
    times = []
    for _ in range(requests):
        clock = time.perf_counter()
        answer = client.get(path, headers=headers)
        times.append((time.perf_counter() - clock) * 1000)
    wire = len(answer.data)
    plain = len(gzip.decompress(answer.data)) if answer.headers.get("Content-Encoding") == "gzip" else wire
    return {
        "p50": statistics.median(times),
        "p95": percentile(times, 0.95),
        "max": max(times),
        "bytes": wire,
        "uncompressed": plain,
    }


def time_page_over_http(port: int, path: str, headers: dict, requests: int, warm_up: int) -> dict:
    """The page through a real server: warm-up requests each on a fresh connection (so each
    worker serves the page), then `requests` timed on one keep-alive connection."""
    headers = {**headers, **GZIP}

    def fetch(connection: http.client.HTTPConnection) -> tuple[int, bytes, str | None]:
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read(), answer.getheader("Content-Encoding")

    for _ in range(max(warm_up, 4)):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        status, body, _ = fetch(connection)
        connection.close()
        if status != 200:
            raise SystemExit(f"{path} answered {status}: {body[:300]!r}")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(requests):
        clock = time.perf_counter()
        status, body, encoding = fetch(connection)
        times.append((time.perf_counter() - clock) * 1000)
    connection.close()
    return {
        "p50": statistics.median(times),
        "p95": percentile(times, 0.95),
        "max": max(times),
        "bytes": len(body),
        "uncompressed": len(gzip.decompress(body)) if encoding == "gzip" else len(body),
    }


def memory_mib(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of one process, from /proc (smaps_rollup), in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }


def server_memory(master_pid: int) -> dict[str, dict[str, float]]:
    """The gunicorn master's memory and each of its workers'."""
    # Each thread lists the children it forked; gunicorn may fork from more than one.
    children = [
        pid for task in Path(f"/proc/{master_pid}/task").iterdir() for pid in (task / "children").read_text().split()
    ]
    found = {"master": memory_mib(master_pid)}
    for number, pid in enumerate(sorted(int(child) for child in children), start=1):
        found[f"worker {number}"] = memory_mib(pid)
    return found


def print_row(name: str, row: dict) -> None:
    print(
        f"  {name:<38} p50 {row['p50']:6.1f} ms  p95 {row['p95']:6.1f} ms  max {row['max']:6.1f} ms  "
        f"{row['bytes']:>7,} bytes on the wire ({row['uncompressed']:,} uncompressed)"
        f"{'' if row['p95'] <= TARGET_MS else '  (over target)'}",
        flush=True,
    )


def measure_through_gunicorn(url: str, samples: dict[str, int], args, checkout: Path = ROOT) -> dict[str, dict]:
    """Each page end to end through `jobwarden serve`'s gunicorn serving `checkout`'s code, then
    the processes' memory."""
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="jobwarden-dashboard-bench-") as scratch:
        # As an installed package runs: bytecode cached (the checkout's shell may say not to write it).
        settings = {"PYTHONDONTWRITEBYTECODE": ""}
        log = Path(scratch) / "server.log"
        with running_server(url, log, deployed=True, checkout=checkout, **settings) as server:
            print(
                f"  through gunicorn (`jobwarden serve` settings) serving {checkout} on port {server.port}:", flush=True
            )
            for name, path, headers in chosen_pages(args.pages):
                results[name] = row = time_page_over_http(
                    server.port, path.format(**samples), headers, args.requests, args.warm_up
                )
                print_row(name, row)
            assert server.process is not None
            memory = server_memory(server.process.pid)
    for process, figures in memory.items():
        over = process.startswith("worker") and figures["rss"] > WORKER_TARGET_MIB
        print(
            f"  memory of the {process:<9} RSS {figures['rss']:5.1f} MiB  PSS {figures['pss']:5.1f} MiB  "
            f"USS {figures['uss']:5.1f} MiB{'  (over target)' if over else ''}",
            flush=True,
        )
    results["memory"] = memory
    return results


def chosen_pages(names: str) -> tuple[tuple[str, str, dict], ...]:
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    return tuple(page for page in PAGES if not wanted or any(name in page[0] for name in wanted))


def measure_jobwarden(url: str, size: int, args) -> dict[str, dict]:
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "JOBWARDEN_MONITOR": False,
            "JOBWARDEN_INTERNAL_API_KEY": "benchmark-internal-key",
            "SECRET_KEY": "benchmark",
        }
    )
    with app.app_context():
        db.create_all()
        backend = db.engine.dialect.name
        if db.session.execute(text("SELECT EXISTS (SELECT 1 FROM jobs)")).scalar_one():
            print(f"\n{backend}: reusing the kept store of {size:,} jobs", flush=True)
        else:
            seconds = populate(size, 1_000, queued=args.queued)
            print(f"\n{backend}: built {size:,} jobs in {seconds:.0f} s", flush=True)
        seconds, hours = roll_up()
        print(
            f"  rolled up {hours:,} hours of finished jobs in {seconds:.1f} s, as the monitor's passes would",
            flush=True,
        )
        samples = {
            f"{status}_id": db.session.execute(text(f"SELECT max(id) FROM jobs WHERE status = '{status}'")).scalar_one()
            for status in ("failed", "queued")
        }
        db.session.remove()
    # Requests are made outside any app context, so each one gets its own (its own session,
    # pool checkout with pre-ping, and rollback at the end), as under a real server.
    client = app.test_client()
    pages = chosen_pages(args.pages)
    if args.through == "gunicorn":
        results = measure_through_gunicorn(url, samples, args)
        if args.serve_checkout:
            baseline = Path(args.serve_checkout).resolve()
            for name, row in measure_through_gunicorn(url, samples, args, baseline).items():
                results[f"{name} [{baseline.name}]"] = row
            for name, row in list(results.items()):
                other = results.get(f"{name} [{baseline.name}]")
                if other is not None and name != "memory":
                    print(
                        f"  {name:<38} p50 {row['p50'] / other['p50']:.2f}, p95 {row['p95'] / other['p95']:.2f} of {baseline.name}'s"
                    )
    else:
        results = {}
        for name, path, headers in pages:
            results[name] = time_page(client, path.format(**samples), headers, args.requests, args.warm_up)
            print_row(name, results[name])
    with app.app_context():
        if backend == "postgresql":
            # psycopg prepares a statement on its 5th run and PostgreSQL may then pick one generic plan
            # for every value; a request's closing rollback drops them, so no plan outlives a request.
            kept = db.session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
            print(f"  prepared statements kept on the pooled connection after the requests: {kept}")
            db.session.remove()
        if args.explain:
            print("  EXPLAIN of the queries each page ran:")
            for name, path, headers in pages:
                with statements_run(db.engine) as seen:
                    client.get(path.format(**samples), headers=headers)
                print(f"  - {name}:")
                for statement, parameters in seen:
                    if statement.lstrip().upper().startswith(("SELECT", "WITH")):
                        print(f"    {' '.join(statement.split())}  {parameters}\n{explain(statement, parameters)}")
        db.session.remove()
        db.engine.dispose()
    return results


def rq_python() -> str:
    """The benchmark's own virtualenv with the pinned rq-dashboard, created on first use."""
    python = RQ_VENV / "bin" / "python"
    probe = [str(python), "-c", "import rq_dashboard, importlib.metadata as m; print(m.version('rq-dashboard'))"]
    wanted = RQ_PINS[0].split("==")[1]
    if not python.exists() or subprocess.run(probe, capture_output=True, text=True).stdout.strip() != wanted:
        print(f"installing {', '.join(RQ_PINS)} into {RQ_VENV} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(RQ_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *RQ_PINS], check=True)
    return str(python)


def measure_rq_dashboard(args) -> dict[str, dict]:
    python = rq_python()
    redis_url = f"{args.redis_url}/{args.redis_db}"
    answer = subprocess.run(
        [python, str(RQ_SIDE), redis_url, str(args.rq_jobs), str(args.requests), str(args.warm_up)],
        check=True,
        capture_output=True,
        text=True,
    )
    print(answer.stderr, end="", flush=True)
    return json.loads(answer.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="100000,1000000", help="store sizes in jobs (default 100000,1000000)")
    parser.add_argument(
        "--queued",
        type=int,
        default=QUEUED,
        help=f"queued jobs in a store built (default {QUEUED:,}); a backlog: most of the store",
    )
    parser.add_argument("--requests", type=int, default=100, help="timed requests per page (default 100)")
    parser.add_argument("--warm-up", type=int, default=5, help="untimed requests per page first (default 5)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="a server to create throwaway databases on")
    parser.add_argument("--no-explain", dest="explain", action="store_false")
    parser.add_argument(
        "--through",
        choices=("client", "gunicorn"),
        default="client",
        help="time with the Flask test client in-process (default) or over HTTP through gunicorn, with memory",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379", help="Redis server for rq-dashboard")
    parser.add_argument("--redis-db", type=int, default=9, help="the Redis db filled and flushed (default 9)")
    parser.add_argument("--rq-jobs", type=int, default=100_000)
    parser.add_argument("--skip-rq", action="store_true")
    parser.add_argument("--pages", default="", help="only the pages whose name contains one of these (comma-separated)")
    parser.add_argument(
        "--keep", action="store_true", help="PostgreSQL: build each size once as <prefix>_<size>, reuse it"
    )
    parser.add_argument(
        "--serve-checkout", default=None, help="with --through gunicorn: also serve this checkout's code, same store"
    )
    add_database_prefix_option(parser)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]

    how = "Flask test client in-process" if args.through == "client" else "HTTP through gunicorn"
    print(
        f"{how}; {args.requests} timed requests per page after {args.warm_up} untimed; target p95 ≤ {TARGET_MS:.0f} ms",
        flush=True,
    )
    ours: dict[tuple[str, int], dict] = {}
    for backend in args.backends.split(","):
        for size in sizes:
            if backend == "postgresql" and args.keep:
                store = kept_database(args.postgres_url, args.database_prefix, size)
            else:
                store = database(args.postgres_url if backend == "postgresql" else None, args.database_prefix)
            with store as url:
                ours[(backend, size)] = measure_jobwarden(url, size, args)

    if args.skip_rq:
        return
    answer = measure_rq_dashboard(args)
    theirs = answer["pages"]
    print(f"\nrq-dashboard 0.9.0, Redis db {args.redis_db}, {args.rq_jobs:,} queued RQ jobs:")
    for name, row in theirs.items():
        print(
            f"  {name:<38} p50 {row['p50']:6.1f} ms  p95 {row['p95']:6.1f} ms  max {row['max']:6.1f} ms  "
            f"{row['bytes']:>7,} bytes",
            flush=True,
        )
    reference = theirs["jobs JSON, 50 per page"]
    for (backend, size), results in ours.items():
        poll = results.get("poll")
        if poll is None:  # --pages left the poll out
            continue
        print(
            f"ratio Jobwarden poll / rq-dashboard jobs JSON, p50, {backend} {size:,} jobs: "
            f"{poll['p50'] / reference['p50']:.2f} ({poll['p50']:.1f} vs {reference['p50']:.1f} ms); "
            f"bytes {poll['bytes']:,} vs {reference['bytes']:,}",
            flush=True,
        )
        memory = results.get("memory")
        if memory is not None:
            largest = max(figures["rss"] for process, figures in memory.items() if process.startswith("worker"))
            print(
                f"ratio Jobwarden's largest gunicorn worker RSS / rq-dashboard's process RSS, {backend} "
                f"{size:,} jobs: {largest / answer['rss_mib']:.2f} ({largest:.1f} vs {answer['rss_mib']:.1f} MiB)",
                flush=True,
            )


if __name__ == "__main__":
    main()
