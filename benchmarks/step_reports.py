"""What a batch of step reports costs as a job's history grows (issue 24, item 6).

One job is claimed and started; then --rounds rounds of --batch step reports (each
a new step's `started`) are posted to /api/internal/reports, --per-request at a time
(the server's cap, `limits.MAX_REPORTS_PER_BATCH`), so each round meets --batch more
earlier events than the one before. One other client creates a job during each
round: how long that create waited (on SQLite, behind the batches' write lock) is
printed beside the round's time and its longest request.

With --senders N, instead: N workers' threads post back-to-back maximal batches (each
on a job of its own) for --seconds while another client creates a job every 0.1 s: how
long a create waits behind them (p50, p99, max), how long a batch request took, and how
many items the server deferred to the next batch (`limits.REPORT_BATCH_BUDGET_S`).

A real gunicorn server on loopback, the store on SQLite (a file under /tmp) or the
PostgreSQL database given.

    .venv/bin/python benchmarks/step_reports.py
    .venv/bin/python benchmarks/step_reports.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/step_reports.py --senders 4 --seconds 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._support import (  # noqa: E402
    INTERNAL_KEY,
    add_database_prefix_option,
    fresh_database,
    running_server,
)
from webapp import create_app  # noqa: E402
from webapp.domain.limits import MAX_REPORTS_PER_BATCH  # noqa: E402
from webapp.store.extensions import db  # noqa: E402

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}


def timed_create(base: str, waits: list[float], started: threading.Event) -> None:
    started.wait()
    time.sleep(0.05)  # let the batch take the write lock first
    begun = time.perf_counter()
    requests.post(f"{base}/api/jobs", json={"type": "other"}, timeout=600).raise_for_status()
    waits.append(time.perf_counter() - begun)


def started_job(http: requests.Session, base: str, worker_id: str) -> tuple[int, str]:
    """A job of its own, claimed and started by `worker_id`: its id and lease token."""
    job_id = http.post(f"{base}/api/jobs", json={"type": "bench"}).json()["id"]
    claimed = http.post(
        f"{base}/api/internal/jobs/claim", json={"worker_id": worker_id, "types": ["bench"]}, headers=KEY
    )
    job = next(job for job in claimed.json()["jobs"] if job["id"] == job_id)
    http.post(f"{base}/api/internal/jobs/{job_id}/start", json={"lease_token": job["lease_token"]}, headers=KEY)
    return job_id, job["lease_token"]


def back_to_back(base: str, senders: int, seconds: float, per_request: int) -> None:
    """`senders` threads post maximal batches without pause; the main thread creates a job every 0.1 s."""
    http = requests.Session()
    jobs = [started_job(http, base, f"w{n}") for n in range(senders)]
    stop = threading.Event()
    batch_s: list[float] = []
    items = {"applied": 0, "deferred": 0}

    def send(job_id: int, token: str) -> None:
        session, number = requests.Session(), 0
        while not stop.is_set():
            batch = [
                {"kind": "step", "job_id": job_id, "lease_token": token, "name": f"s{number + n}", "event": "started"}
                for n in range(per_request)
            ]
            sent = time.perf_counter()
            results = session.post(f"{base}/api/internal/reports", json={"items": batch}, headers=KEY, timeout=600)
            batch_s.append(time.perf_counter() - sent)
            codes = [result["code"] for result in results.json()["results"]]
            items["applied"] += codes.count(200)
            items["deferred"] += codes.count(503)
            number += codes.count(200)

    threads = [threading.Thread(target=send, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    waits: list[float] = []
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        begun = time.perf_counter()
        http.post(f"{base}/api/jobs", json={"type": "other"}, timeout=600).raise_for_status()
        waits.append(time.perf_counter() - begun)
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    waits.sort()
    batch_s.sort()
    print(
        f"{senders} senders of {per_request}-item batches, {seconds:.0f} s: another client's create "
        f"p50 {waits[len(waits) // 2] * 1000:.0f} ms, p99 {waits[int(len(waits) * 0.99)] * 1000:.0f} ms, "
        f"max {waits[-1] * 1000:.0f} ms ({len(waits)} creates); batch request p50 "
        f"{batch_s[len(batch_s) // 2] * 1000:.0f} ms, max {batch_s[-1] * 1000:.0f} ms; items applied "
        f"{items['applied']}, deferred {items['deferred']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a throwaway database is made); default SQLite")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=1000, help="reports per round")
    parser.add_argument(
        "--per-request", type=int, default=MAX_REPORTS_PER_BATCH, help="reports per request (at most the cap)"
    )
    parser.add_argument("--senders", type=int, default=0, help="back-to-back batch senders (see above)")
    parser.add_argument("--seconds", type=float, default=20, help="how long the senders send, with --senders")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    with fresh_database(args.database_url, args.database_prefix) as url, tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": url,
                "JOBWARDEN_MONITOR": False,
                "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY,
                "SECRET_KEY": "bench",
            }
        )
        with app.app_context():
            db.create_all()
            backend = db.engine.dialect.name
        with running_server(url, Path(tmp) / "server.log") as server:
            base = server.url
            if args.senders:
                print(f"backend: {backend}")
                back_to_back(base, args.senders, args.seconds, args.per_request)
                return
            http = requests.Session()
            job_id = http.post(f"{base}/api/jobs", json={"type": "bench"}).json()["id"]
            job = http.post(f"{base}/api/internal/jobs/claim", json={"worker_id": "w"}, headers=KEY).json()["jobs"][0]
            token = job["lease_token"]
            http.post(f"{base}/api/internal/jobs/{job_id}/start", json={"lease_token": token}, headers=KEY)
            print(f"backend: {backend}; batches of {args.batch} step reports on one job")
            for round_number in range(args.rounds):
                items = [
                    {
                        "kind": "step",
                        "job_id": job_id,
                        "lease_token": token,
                        "name": f"r{round_number}-{n}",
                        "event": "started",
                    }
                    for n in range(args.batch)
                ]
                waits: list[float] = []
                started = threading.Event()
                other = threading.Thread(target=timed_create, args=(base, waits, started))
                other.start()
                begun = time.perf_counter()
                started.set()
                requests_s, codes = [], set()
                for first in range(0, len(items), args.per_request):
                    sent = time.perf_counter()
                    answer = http.post(
                        f"{base}/api/internal/reports",
                        json={"items": items[first : first + args.per_request]},
                        headers=KEY,
                        timeout=600,
                    )
                    requests_s.append(time.perf_counter() - sent)
                    codes |= {result["code"] for result in answer.json()["results"]}
                took = time.perf_counter() - begun
                other.join()
                print(
                    f"earlier events {round_number * args.batch:>6}: {args.batch} reports {took:6.2f} s, "
                    f"longest request {max(requests_s):5.2f} s, another client's create {waits[0]:5.2f} s, "
                    f"codes {sorted(codes)}"
                )


if __name__ == "__main__":
    main()
