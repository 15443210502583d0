"""What a batch of step reports costs as a job's history grows (issue 24, item 6).

One job is claimed and started; then --rounds rounds of --batch step reports (each
a new step's `started`) are posted to /api/internal/reports, --per-request at a time
(the server's cap, `limits.MAX_REPORTS_PER_BATCH`), so each round meets --batch more
earlier events than the one before. One other client creates a job during each
round: how long that create waited (on SQLite, behind the batches' write lock) is
printed beside the round's time and its longest request.

A real gunicorn server on loopback, the store on SQLite (a file under /tmp) or the
PostgreSQL database given.

    .venv/bin/python benchmarks/step_reports.py
    .venv/bin/python benchmarks/step_reports.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a throwaway database is made); default SQLite")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=1000, help="reports per round")
    parser.add_argument(
        "--per-request", type=int, default=MAX_REPORTS_PER_BATCH, help="reports per request (at most the cap)"
    )
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
