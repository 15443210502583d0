"""Claims of other queues beside a held backlog: a paused queue, or a queue at its concurrency
limit, holding many queued jobs (an incident's pause, a GPU queue's waiting runs); and claims of
another type beside a backlog nobody holds (`other_type`: the backlog is of type `t`, the
claimer takes only type `u`, as workers split by type do).

Per backend and per way of holding: --depth jobs in the queue `held` (priority 1, so they
come first in claim order), then 200 jobs of the default queue; ANALYZE; then --claims
one-job claims that start the job (`jobs.claim_jobs`, as a worker's claim), each timed
in-process; then --claims times a waiting claim's look for when to claim again (the claim
found nothing: `next_claimable_at`). The same with 20 held jobs first, in the same
run: the ratio deep / shallow is what the backlog costs each claim and look (1.0: nothing).

    .venv/bin/python benchmarks/held_backlog.py
    .venv/bin/python benchmarks/held_backlog.py --backends postgresql --depth 100000 --holds other_type
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from benchmarks._support import DEFAULT_POSTGRES, add_database_prefix_option, app_config, fresh_database  # noqa: E402

SHALLOW = 20
OTHER_JOBS = 200


def claim_times(database_url: str, depth: int, hold: str, claims: int) -> tuple[list[float], list[float]]:
    """(each claim's time, each look's time) in seconds."""
    from webapp import create_app, jobs
    from webapp.domain.timeutil import utcnow
    from webapp.jobs import queues
    from webapp.store import flow
    from webapp.store.extensions import db
    from webapp.store.next_claimable import next_claimable_at

    app = create_app(app_config(database_url))
    with app.app_context():
        db.create_all()
        backlog = {"type": "t", "queue": "default" if hold == "other_type" else "held", "priority": 1}
        for start in range(0, depth, 5_000):
            jobs.create_jobs([backlog] * min(5_000, depth - start))
        if hold == "pause":
            queues.pause("held", actor="bench", reason="incident")
        elif hold == "full_limit":
            queues.set_limits("held", {"concurrency": 1}, actor="bench")
            jobs.claim_jobs("gpu-box", queues=["held"])
        claimed_type = "u" if hold == "other_type" else "t"
        types = [claimed_type] if hold == "other_type" else None
        jobs.create_jobs([{"type": claimed_type}] * OTHER_JOBS)
        db.session.execute(text("ANALYZE jobs" if database_url.startswith("postgresql") else "ANALYZE"))
        db.session.commit()
        flow.limits_changed()
        times = []
        for _ in range(claims):
            begun = time.perf_counter()
            [job] = jobs.claim_jobs("w", types=types, batch_size=1, start=True)
            times.append(time.perf_counter() - begun)
            assert (job.queue, job.type) == ("default", claimed_type), job
        looks = []
        for _ in range(claims):
            begun = time.perf_counter()
            next_claimable_at(types, None, utcnow())
            looks.append(time.perf_counter() - begun)
        db.session.remove()
        db.engine.dispose()
    return times, looks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated (default both)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="the PostgreSQL server to create databases on")
    parser.add_argument("--depth", type=int, default=100_000, help="jobs held back (default 100,000)")
    parser.add_argument("--claims", type=int, default=100, help="one-job claims timed (default 100, at most 200)")
    parser.add_argument("--holds", default="pause,full_limit,other_type", help="comma-separated (default all three)")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        for hold in args.holds.split(","):
            p50, look_p50 = {}, {}
            for depth in (SHALLOW, args.depth):
                server = args.postgres_url if backend == "postgresql" else None
                with fresh_database(server, args.database_prefix) as url:
                    times, looks = claim_times(url, depth, hold, min(args.claims, OTHER_JOBS))
                p50[depth] = statistics.median(times) * 1000
                look_p50[depth] = statistics.median(looks) * 1000
                p90 = statistics.quantiles(times, n=10)[-1] * 1000
                print(
                    f"{backend:<10} {hold:<10} held {depth:>7}: claim p50 {p50[depth]:6.2f} ms  p90 {p90:6.2f} ms"
                    f"  look p50 {look_p50[depth]:6.2f} ms"
                )
            print(
                f"{backend:<10} {hold:<10} ratio p50 held {args.depth} / {SHALLOW}: claim {p50[args.depth] / p50[SHALLOW]:.2f}"
                f"  look {look_p50[args.depth] / look_p50[SHALLOW]:.2f}"
            )


if __name__ == "__main__":
    main()
