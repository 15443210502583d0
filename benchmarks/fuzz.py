"""Fuzz the API with schemathesis against a real gunicorn server on loopback.

Every operation of GET /api/openapi.json gets --examples generated requests
(the unit suite's test_openapi.py runs 15), on a store holding a job in each
status, with the internal key, checked for: no 5xx; status code, content type
and body all as documented. Each request is timed, and one slower than --flag-ms
(default 100 ms, issue 24: no request may hold the server) is flagged. Prints the
examples per operation, every failure and every flagged request; exits 1 on any.
Times are wall clock: on a loaded machine compare against the same run's median.

    .venv/bin/python benchmarks/fuzz.py
    .venv/bin/python benchmarks/fuzz.py --examples 50 --flag-ms 250
    .venv/bin/python benchmarks/fuzz.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,  # noqa: E402
    status_code_conformance,
)

from benchmarks._support import (  # noqa: E402
    INTERNAL_KEY,
    add_database_prefix_option,
    app_config,
    postgres_database,
    running_server,
)
from webapp import create_app, jobs  # noqa: E402
from webapp.store.extensions import db  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# A generated claim may ask to wait up to a minute for a job that never comes: longer than the
# client waits (the quiet run of 2026-12-06 spent 335 s shrinking such time-outs).
CLAIM_WAIT_S = 0.2


def seed_a_job_in_each_status() -> None:
    """pending, queued, claimed, running, completed, failed and cancelled: one job each, through the state machine."""
    jobs.create_job(type="fuzz.pending", hold=True)
    jobs.create_job(type="fuzz.queued")
    jobs.cancel_job(jobs.create_job(type="fuzz.cancelled").id, reason="fuzz seed")
    jobs.mark_failed(jobs.create_job(type="fuzz.failed").id, reason="fuzz seed")
    for status in ("claimed", "running", "completed"):
        job = jobs.create_job(type=f"fuzz.{status}")
        (claimed,) = jobs.claim_jobs("fuzz-seed", types=[job.type])
        if status != "claimed":
            jobs.start_job(job.id, claimed.lease_token)
        if status == "completed":
            jobs.complete_job(job.id, claimed.lease_token, result={"ok": True})


def fuzz(
    database_url: str, examples: int, workdir: Path
) -> tuple[Counter, Counter, list[str], list[tuple[float, str]]]:
    """Requests per operation, answers per status, failures, and every request's time with its operation."""
    app = create_app(app_config(database_url))
    with app.app_context():
        db.create_all()
        seed_a_job_in_each_status()
        db.session.remove()
    sent: Counter = Counter()
    statuses: Counter = Counter()
    failures: list[str] = []
    times: list[tuple[float, str]] = []
    with running_server(database_url, workdir / "server.log") as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            name = f"{operation.method.upper()} {operation.path}"

            @given(case=operation.as_strategy())
            @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def answers_within_the_document(case):
                sent[name] += 1  # noqa: B023  (runs now, within this iteration)
                waits = isinstance(case.body, dict) and bool(case.body.get("wait_s"))
                if waits:  # a waiting claim waits by design: briefly here, inside the client's timeout
                    case.body["wait_s"] = min(float(case.body["wait_s"]), CLAIM_WAIT_S)
                began = time.perf_counter()
                response = case.call(headers={"Authorization": f"Bearer {INTERNAL_KEY}"})
                if not waits:
                    times.append((time.perf_counter() - began, f"{name} → {response.status_code}"))  # noqa: B023
                statuses[response.status_code] += 1
                case.validate_response(response, checks=CHECKS)

            started = time.monotonic()
            try:
                answers_within_the_document()
            except (Exception, BaseExceptionGroup) as error:  # a failing example (schemathesis groups
                # its failures in a BaseExceptionGroup): recorded and shown, the run goes on
                failures.append(f"{name}: {str(error)[:2000]}")
            print(f"{name:55} {sent[name]:5} examples  {time.monotonic() - started:5.1f} s", flush=True)
    return sent, statuses, failures, times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a throwaway database is made); default SQLite")
    parser.add_argument("--examples", type=int, default=300, help="generated requests per operation")
    parser.add_argument("--flag-ms", type=float, default=100.0, help="flag a request slower than this")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jobwarden-fuzz-") as tmp, ExitStack() as stack:
        url = (
            stack.enter_context(postgres_database(args.database_url, args.database_prefix))
            if args.database_url
            else f"sqlite:///{Path(tmp) / 'fuzz.db'}"
        )
        started = time.monotonic()
        sent, statuses, failures, times = fuzz(url, args.examples, Path(tmp))
    print(
        f"\n{sum(sent.values())} requests over {len(sent)} operations in {time.monotonic() - started:.0f} s; "
        f"answers by status: {dict(sorted(statuses.items()))}; 5xx: {sum(n for s, n in statuses.items() if s >= 500)}; "
        f"failures: {len(failures)}"
    )
    for failure in failures:
        print("FAILURE:", failure)
    times.sort()
    flagged = [(took, what) for took, what in times if took * 1000 > args.flag_ms]
    print(
        f"request time p50 {times[len(times) // 2][0] * 1000:.1f} ms, p99 {times[int(len(times) * 0.99)][0] * 1000:.1f} ms, "
        f"max {times[-1][0] * 1000:.1f} ms; over {args.flag_ms:.0f} ms: {len(flagged)}"
    )
    for took, what in flagged[::-1]:
        print(f"SLOW: {what} {took * 1000:.0f} ms")
    return 1 if failures or flagged else 0


if __name__ == "__main__":
    sys.exit(main())
