"""The rq-dashboard half of benchmarks/dashboard.py, run by the benchmark's own virtualenv.

rq-dashboard is not a Jobwarden dependency: benchmarks/dashboard.py installs it into
benchmarks/.venv-rq-dashboard and runs this file with that interpreter.

    python rq_dashboard_side.py REDIS_URL JOBS REQUESTS WARM_UP

REDIS_URL names one Redis db (e.g. redis://127.0.0.1:6379/9); only that db is
flushed, before filling it and again at the end. It fills the db with JOBS
queued no-op RQ jobs in one queue, then times rq-dashboard's jobs-list JSON
(50 per page, the request its jobs page polls) and its jobs page (the HTML shell)
with the Flask test client, and prints one JSON line: p50/p95/max/bytes per page and
`rss_mib`, this process's resident memory after the requests (rq-dashboard's whole server
but for an HTTP server in front).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import rq_dashboard
from flask import Flask
from redis import Redis
from rq import Queue

QUEUE = "bench"
CHUNK = 2000


def fill(redis: Redis, count: int) -> float:
    queue = Queue(QUEUE, connection=redis)
    clock = time.perf_counter()
    for offset in range(0, count, CHUNK):
        with redis.pipeline() as pipe:
            queue.enqueue_many(
                [Queue.prepare_data("time.sleep", args=(0,)) for _ in range(min(CHUNK, count - offset))],
                pipeline=pipe,
            )
            pipe.execute()
    seconds = time.perf_counter() - clock
    if queue.count != count:
        raise SystemExit(f"rq: {queue.count} of {count} jobs queued")
    return seconds


def dashboard(redis_url: str) -> Flask:
    """rq-dashboard as its README embeds it in a Flask app."""
    app = Flask(__name__)
    app.config.from_object(rq_dashboard.default_settings)
    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    rq_dashboard.web.setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/rq")
    return app


def url_of(app: Flask, endpoint: str) -> str:
    """The endpoint's URL for the bench queue's queued jobs, page 1 of 50, whatever its rule's shape."""
    values = {
        "instance_number": 0,
        "queue_name": QUEUE,
        "registry_name": "queued",
        "per_page": 50,
        "order": "dsc",
        "page": 1,
    }  # newest first, as /jobs
    rule = next(rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint and rule.arguments)
    with app.test_request_context():
        from flask import url_for

        return url_for(endpoint, **{name: values[name] for name in rule.arguments})


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def time_page(client, path: str, requests: int, warm_up: int) -> dict:
    for _ in range(warm_up):
        answer = client.get(path)
        if answer.status_code != 200:
            raise SystemExit(f"{path} answered {answer.status_code}")
    times = []
    for _ in range(requests):
        clock = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - clock) * 1000)
    return {
        "p50": statistics.median(times),
        "p95": percentile(times, 0.95),
        "max": max(times),
        "bytes": len(answer.data),
        "path": path,
    }


def main() -> None:
    redis_url, count, requests, warm_up = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    try:
        seconds = fill(redis, count)
        print(f"rq: queued {count:,} jobs in {seconds:.1f} s ({redis_url})", file=sys.stderr, flush=True)
        app = dashboard(redis_url)
        client = app.test_client()
        json_page = url_of(app, "rq_dashboard.list_jobs")
        html_page = url_of(app, "rq_dashboard.jobs_overview")
        answer = client.get(json_page).get_json()
        if len(answer["jobs"]) != 50:
            raise SystemExit(f"rq-dashboard listed {len(answer['jobs'])} jobs, not 50")
        results = {
            "jobs JSON, 50 per page": time_page(client, json_page, requests, warm_up),
            "jobs page (HTML shell)": time_page(client, html_page, requests, warm_up),
        }
    finally:
        redis.flushdb()
    print(json.dumps({"pages": results, "rss_mib": resident_mib()}))


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS in /proc/self/status")


if __name__ == "__main__":
    main()
