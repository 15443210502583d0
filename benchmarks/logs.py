"""What job logs cost (issue 27): the worker's CPU for a command writing 100,000 lines in
10 s against the same command writing to /dev/null, the server's statements per report
batch with log pieces in it, and the poll of a 1 MiB log.

1. worker CPU: a real gunicorn server and a real `jobwarden worker` process; the job
   `bench.lines` (benchmarks/log_handlers.py) writes --lines lines in --seconds seconds,
   alternately to /dev/null and to its stdout (so into the log), --rounds times each. The
   worker process's own CPU (utime + stime from /proc, its threads only: not the command,
   not its supervisor) over each job is printed, and the difference as a share of a core.
2. statements: an in-process app on the same database posts batches to
   /api/internal/reports — --jobs heartbeats, with and without a log piece for each job —
   and counts the SQL statements each batch runs.
3. poll: a log filled past 1 MiB (so the cap cuts it) is read over HTTP from the start
   (GET /api/jobs/<id>/log: about 1 MiB answered), and followed from its end (nothing new),
   --polls times each, beside GET /api/jobs/<id> (the job's JSON) in the same run; then
   read whole --polls times more with a 13 KB piece written before each read (not timed), as
   a running job's page is opened while it writes; then its job completes and the whole log
   is read --polls times more. With --baseline, another checkout's server (the same settings,
   the same database) answers the same polls, alternated with this one's in --pairs rounds,
   the order swapped each round: the figures of the two trees come from the same minutes.
   Beside each series' times, its server's CPU per request (its gunicorn workers' utime +
   stime), which the machine's other load disturbs less than the times.

    .venv/bin/python benchmarks/logs.py
    .venv/bin/python benchmarks/logs.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/logs.py --only-poll --baseline ../wt-main [--database-url ...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from benchmarks._support import (  # noqa: E402
    INTERNAL_KEY,
    Server,
    add_database_prefix_option,
    app_config,
    cpu_seconds,
    fresh_database,
    running_server,
    server_cpu_seconds,
    statements_run,
)
from webapp import create_app  # noqa: E402
from webapp.domain.limits import DEFAULT_LOG_MAX_BYTES, LOG_ITEM_MAX_BYTES  # noqa: E402
from webapp.domain.log_lines import prefix  # noqa: E402
from webapp.store.extensions import db  # noqa: E402

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}


def wait_finished(http: requests.Session, base: str, job_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"{base}/api/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not finish")


def worker_cpu(base: str, tmp: Path, lines: int, seconds: float, rounds: int) -> None:
    log = (tmp / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "webapp", "worker", "--server", base, "--handlers", "benchmarks.log_handlers"],
        cwd=ROOT,
        env={**os.environ, "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    http = requests.Session()
    results: dict[str, list[float]] = {"devnull": [], "log": []}
    try:
        time.sleep(2)  # started and waiting for a claim
        for _ in range(rounds):
            for sink in ("devnull", "log"):
                before = cpu_seconds(worker.pid)
                begun = time.monotonic()
                payload = {"lines": lines, "seconds": seconds, "sink": sink}
                job_id = http.post(f"{base}/api/jobs", json={"type": "bench.lines", "payload": payload}).json()["id"]
                job = wait_finished(http, base, job_id)
                assert job["status"] == "completed", job
                wall = time.monotonic() - begun
                used = cpu_seconds(worker.pid) - before
                results[sink].append(used / wall)
                stored = http.get(f"{base}/api/jobs/{job_id}/log").json()
                print(
                    f"  {sink:8} job {job_id}: worker CPU {used:.2f} s over {wall:.1f} s = {100 * used / wall:.1f} % of a core"
                    + (
                        f"; log {stored['next_offset']:,} bytes written, {stored['cut_bytes']:,} cut"
                        if sink == "log"
                        else ""
                    )
                )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    null, logged = statistics.median(results["devnull"]), statistics.median(results["log"])
    print(
        f"worker CPU, median of {rounds}: /dev/null {100 * null:.1f} % of a core, logged {100 * logged:.1f} %: "
        f"the log costs {100 * (logged - null):.1f} % of a core (target ≤ 5 %)"
    )


def statements_per_batch(url: str, jobs_in_batch: int) -> None:
    app = create_app(app_config(url))
    client = app.test_client()
    with app.app_context():
        ids = [client.post("/api/jobs", json={"type": "bench.batch"}).get_json()["id"] for _ in range(jobs_in_batch)]
        claimed = client.post(
            "/api/internal/jobs/claim", json={"worker_id": "b", "batch_size": jobs_in_batch}, headers=KEY
        ).get_json()["jobs"]
        tokens = {job["id"]: job["lease_token"] for job in claimed}
        assert sorted(tokens) == sorted(ids)
        offsets = dict.fromkeys(ids, 0)
        piece = "".join(f"{prefix('out')}line {i} of a report batch's log piece\n" for i in range(200))

        def batch(with_log: bool) -> tuple[int, int]:
            """(statements the batch ran, of which on the log's table)"""
            items = []
            for job_id in ids:
                items.append({"kind": "heartbeat", "job_id": job_id, "lease_token": tokens[job_id], "progress": 50})
                if with_log:
                    items.append(
                        {
                            "kind": "log",
                            "job_id": job_id,
                            "lease_token": tokens[job_id],
                            "offset": offsets[job_id],
                            "text": piece,
                        }
                    )
                    offsets[job_id] += len(piece.encode())
            with statements_run(db.engine) as seen:
                answer = client.post("/api/internal/reports", json={"items": items}, headers=KEY)
            assert answer.status_code == 200 and all(r["code"] == 200 for r in answer.get_json()["results"])
            return len(seen), sum("job_log_chunks" in statement for statement, _ in seen)

        for _ in range(3):  # warm
            batch(True)
        plain = [batch(False) for _ in range(20)]
        logged = [batch(True) for _ in range(20)]
        over = [batch(True) for _ in range(150)]  # past the cap (about twice): trims come into it
        mean = lambda runs, index: statistics.mean(run[index] for run in runs)  # noqa: E731
        print(
            f"statements per report batch of {jobs_in_batch} heartbeats: {mean(plain, 0):.2f}; with a "
            f"{len(piece.encode()):,}-byte log piece for each job: {mean(logged, 0):.2f}, of which on the log "
            f"{mean(logged, 1):.2f}; while the logs grow past the {DEFAULT_LOG_MAX_BYTES:,}-byte cap: "
            f"{mean(over, 0):.2f}, of which on the log {mean(over, 1):.2f} (the insert, and a trim each "
            f"eighth of the cap; at most {max(run[1] for run in over)} in one batch)"
        )


def storage(url: str, jobs_count: int, lines_per_job: int) -> None:
    """What 1,000 jobs' logs take in the store: each writes `lines_per_job` lines of about 90 bytes
    (with their prefix), sent as a worker sends them (one piece per 0.2 s of a job writing 20 lines
    a second: 4 lines a piece)."""
    from sqlalchemy import text

    from webapp.jobs import logs
    from webapp.store.logs import LogPiece
    from webapp.store.transaction import unit_of_work

    app = create_app(app_config(url))
    with app.app_context():
        client = app.test_client()
        for _ in range(jobs_count):
            client.post("/api/jobs", json={"type": "bench.storage"})
        held = []
        while len(held) < jobs_count:
            held += client.post(
                "/api/internal/jobs/claim",
                json={"worker_id": "s", "types": ["bench.storage"], "batch_size": 100},
                headers=KEY,
            ).get_json()["jobs"]

        def size() -> int:
            if db.engine.dialect.name == "postgresql":
                return db.session.scalar(text("SELECT pg_total_relation_size('job_log_chunks')"))
            db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            return db.session.scalar(text("PRAGMA page_count")) * db.session.scalar(text("PRAGMA page_size"))

        before = size()
        written = 0
        line = "{} of a typical log line: a job saying what it does, and a number or two\n"
        for job in held:
            offset = 0
            pieces = []
            for first in range(0, lines_per_job, 4):
                piece = "".join(prefix("out") + line.format(first + i) for i in range(4))
                pieces.append(LogPiece(job["id"], job["lease_token"], offset, piece))
                offset += len(piece.encode())
            written += offset
            with unit_of_work():
                logs.append(pieces)
        db.session.commit()
        used = size() - before
        print(
            f"storage: {jobs_count:,} jobs × {lines_per_job} lines ({written / jobs_count / 1024:.1f} KiB of log each, "
            f"{lines_per_job // 4} pieces): {used / 2**20:.1f} MiB in the store, {used / written:.2f}× the text "
            f"({used / jobs_count / 1024:.1f} KiB a job)"
        )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def log_poll(servers: dict[str, Server], url: str, polls: int, pairs: int) -> None:
    """`servers`: by name, all serving the database `url`; the first writes the log."""
    http = requests.Session()
    base = next(iter(servers.values())).url
    job_id = http.post(f"{base}/api/jobs", json={"type": "bench.poll"}).json()["id"]
    job = http.post(
        f"{base}/api/internal/jobs/claim", json={"worker_id": "p", "types": ["bench.poll"]}, headers=KEY
    ).json()["jobs"][0]
    token = job["lease_token"]
    offset = 0
    line = f"{prefix('out')}" + "a line of a long log, as a chatty job writes it " * 2 + "\n"
    piece = line * (LOG_ITEM_MAX_BYTES // len(line.encode()))
    small = line * (13_000 // len(line.encode()))

    def write(text: str, to: str = base) -> None:
        """Through the server `to` (the one measured, so each server's CPU holds its own writes)."""
        nonlocal offset
        item = {"kind": "log", "job_id": job_id, "lease_token": token, "offset": offset, "text": text}
        assert http.post(f"{to}/api/internal/reports", json={"items": [item]}, headers=KEY).status_code == 200
        offset += len(text.encode())

    while offset < 2 * DEFAULT_LOG_MAX_BYTES:
        write(piece)
    whole = http.get(f"{base}/api/jobs/{job_id}/log").json()
    assert whole["cut_bytes"] > 0 and whole["next_offset"] == offset
    end = whole["next_offset"]

    def timed(url: str, params: dict, count: int, before=None) -> list[float]:
        taken = []
        for _ in range(count):
            if before is not None:
                before()
            begun = time.perf_counter()
            answer = http.get(url, params=params)
            answer.raise_for_status()
            taken.append(1000 * (time.perf_counter() - begun))
        return taken

    in_process = create_app(app_config(url)).test_client()

    def timed_in_process(path: str, params: dict) -> list[float]:
        taken = []
        for _ in range(polls):
            begun = time.perf_counter()
            assert in_process.get(path, query_string=params).status_code == 200
            taken.append(1000 * (time.perf_counter() - begun))
        return taken

    local_start = timed_in_process(f"/api/jobs/{job_id}/log", {})
    local_follow = timed_in_process(f"/api/jobs/{job_id}/log", {"offset": end})
    local_job = timed_in_process(f"/api/jobs/{job_id}", {})
    print(
        f"in-process (this checkout, Flask's test client: no network, no gunicorn): whole log p50 "
        f"{statistics.median(local_start):.1f} ms, p95 {percentile(local_start, 0.95):.1f} ms; following "
        f"p50 {statistics.median(local_follow):.1f} ms, p95 {percentile(local_follow, 0.95):.1f} ms; "
        f"job JSON p50 {statistics.median(local_job):.1f} ms, p95 {percentile(local_job, 0.95):.1f} ms"
    )

    def alternated(measure) -> dict[str, tuple[list[float], float]]:
        """`measure(server_url, count)` for each server in turn, `pairs` rounds, the order swapped
        each round: each server's times, and its workers' CPU per request (ms)."""
        taken: dict[str, list[float]] = {name: [] for name in servers}
        cpu = dict.fromkeys(servers, 0.0)
        names = list(servers)
        for round_ in range(pairs):
            for name in names if round_ % 2 == 0 else names[::-1]:
                master = servers[name].process
                assert master is not None
                before = server_cpu_seconds(master.pid)
                taken[name] += measure(servers[name].url, max(1, polls // pairs))
                cpu[name] += server_cpu_seconds(master.pid) - before
        return {name: (values, 1000 * cpu[name] / len(values)) for name, values in taken.items()}

    def line_of(what: str, taken: dict[str, tuple[list[float], float]]) -> None:
        print(
            f"  {what}: "
            + "; ".join(
                f"{name} p50 {statistics.median(values):.1f} ms, p95 {percentile(values, 0.95):.1f} ms, "
                f"server CPU {cpu:.1f} ms a request"
                for name, (values, cpu) in taken.items()
            )
        )

    shown = len(whole["text"].encode())
    print(
        f"log poll over HTTP, {polls} each (in {pairs} alternated rounds): the {shown:,}-byte log (of {offset:,} written)"
    )
    line_of(
        "whole, running (target p95 ≤ 20 ms)", alternated(lambda at, n: timed(f"{at}/api/jobs/{job_id}/log", {}, n))
    )
    line_of(
        "following from its end",
        alternated(lambda at, n: timed(f"{at}/api/jobs/{job_id}/log", {"offset": end}, n)),
    )
    line_of("GET /api/jobs/<id>", alternated(lambda at, n: timed(f"{at}/api/jobs/{job_id}", {}, n)))
    line_of(
        f"whole, running, a {len(small.encode()):,}-byte piece written before each read",
        alternated(lambda at, n: timed(f"{at}/api/jobs/{job_id}/log", {}, n, before=lambda: write(small, at))),
    )
    ended = http.post(
        f"{base}/api/internal/reports",
        json={
            "items": [
                {"kind": "start", "job_id": job_id, "lease_token": token},
                {"kind": "complete", "job_id": job_id, "lease_token": token, "exit_code": 0},
            ]
        },
        headers=KEY,
    ).json()["results"]
    assert [result["code"] for result in ended] == [200, 200], ended
    line_of(
        "whole, once its job has completed (sealed: each process keeps its answer after the first read)",
        alternated(lambda at, n: timed(f"{at}/api/jobs/{job_id}/log", {}, n)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a throwaway database is made); default SQLite")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10, help="jobs in each report batch (statements)")
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--storage-lines", type=int, default=200, help="lines of each of the 1,000 jobs (storage)")
    parser.add_argument("--skip-cpu", action="store_true", help="leave out the worker's CPU")
    parser.add_argument("--skip-storage", action="store_true", help="leave out the storage of 1,000 jobs")
    parser.add_argument("--only-poll", action="store_true", help="only the log poll (no statements, storage or CPU)")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout whose server answers the same polls, alternated"
    )
    parser.add_argument("--pairs", type=int, default=1, help="alternated rounds of the polls (with --baseline)")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    with fresh_database(args.database_url, args.database_prefix) as url, tempfile.TemporaryDirectory() as tmp:
        app = create_app(app_config(url))
        with app.app_context():
            db.create_all()
            print(f"backend: {db.engine.dialect.name}")
        if not args.only_poll:
            statements_per_batch(url, args.jobs)
        if not (args.skip_storage or args.only_poll):
            storage(url, 1000, args.storage_lines)
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(running_server(url, Path(tmp) / "server.log"))
            servers = {"this": server}
            if args.baseline is not None:
                baseline = running_server(url, Path(tmp) / "baseline.log", checkout=args.baseline.resolve())
                servers["baseline"] = stack.enter_context(baseline)
            log_poll(servers, url, args.polls, args.pairs)
            if not (args.skip_cpu or args.only_poll):
                worker_cpu(server.url, Path(tmp), args.lines, args.seconds, args.rounds)


if __name__ == "__main__":
    main()
