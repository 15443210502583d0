"""`jobwarden dev`: the README's first command — the dashboard on the embedded
SQLite store, the health monitor, a local worker running the demo handlers
(kept alive by webapp.cli.dev_worker), and a few sample jobs to look at. It prints the
line that starts a second worker, with this session's internal key."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from typing import Any

import click
from sqlalchemy import func, select
from werkzeug.serving import make_server

from .dev_worker import LocalWorker, second_worker_command, worker_argv

SAMPLE_QUEUE = "gpu"
SAMPLE_QUEUE_LIMITS = {"concurrency": 1, "rate_limit": {"limit": 10, "period_s": 60}}
SAMPLE_JOBS: list[dict[str, Any]] = [
    {"type": "demo.sleep", "payload": {"seconds": 30}},
    {"type": "demo.pipeline", "payload": {"seconds_per_step": 8}},
    {"type": "demo.pipeline", "payload": {"seconds_per_step": 4, "fail_step": "transcode"}, "max_attempts": 1},
    # Fails at upload; "Resume from step upload" replays download and transcode and uploads.
    {
        "type": "demo.pipeline",
        "payload": {"seconds_per_step": 3, "fail_once_at": "upload", "transcode_failures": 1},
        "max_attempts": 1,
    },
    # Fails in epoch 4; its automatic retry resumes after the epoch-3 checkpoint.
    {
        "type": "demo.train",
        "payload": {"epochs": 8, "seconds_per_epoch": 2, "fail_once_at_epoch": 4},
        "max_attempts": 2,
    },
    {"type": "demo.flaky", "payload": {}},
    # Its handler says when to retry (an upstream's Retry-After): "Next retry" in 5 minutes, or Run now.
    {"type": "demo.rate_limited", "payload": {"retry_after_s": 300}},
    {"type": "demo.chatty", "payload": {"lines": 3000, "pause": 0.05}},  # a long log, followed live
    {"type": "demo.crash", "payload": {}, "max_attempts": 1},
    {"type": "demo.sleep", "payload": {"seconds": 10}, "priority": 5},
    {"type": "demo.sleep", "payload": {"seconds": 5}, "hold": True},
    # A limited queue: one "gpu" job at a time, so the others show "waiting: concurrency"
    # on /jobs and /queues; and a unique job (a second create of its key answers with it).
    *({"type": "demo.sleep", "payload": {"seconds": 6}, "queue": SAMPLE_QUEUE} for _ in range(3)),
    {"type": "demo.sleep", "payload": {"seconds": 3}, "unique_key": "nightly-import"},
    # Created to run later: /jobs shows it queued, waiting until two minutes after the start.
    {"type": "demo.sleep", "payload": {"seconds": 3}, "delay_s": 120},
]
# A sample alert: demo.crash always fails, so this rule fires on the monitor's first pass after
# it ran (on /health, and to any webhook that subscribes to alert.firing).
SAMPLE_ALERT_RULE: dict[str, Any] = {
    "kind": "failure_rate",
    "subject": "demo.crash",
    "threshold": 0.5,
    "window_s": 3600,
    "min_jobs": 1,
}


def seed_samples() -> int:
    """Create the sample jobs when the store has none; returns how many were created."""
    from .. import jobs
    from ..jobs import alert_rules, queues
    from ..store.extensions import db
    from ..store.models import Job

    if db.session.execute(select(func.count()).select_from(Job)).scalar_one():
        return 0
    queues.set_limits(SAMPLE_QUEUE, SAMPLE_QUEUE_LIMITS, actor="dev", reason="sample: one GPU job at a time")
    alert_rules.add(**SAMPLE_ALERT_RULE)
    return len(jobs.create_jobs(SAMPLE_JOBS, actor="dev"))


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--concurrency", default=2, show_default=True, type=int, help="Slots of the local worker.")
@click.option("--samples/--no-samples", default=True, show_default=True, help="Seed sample jobs into an empty store.")
def dev_command(host: str, port: int, concurrency: int, samples: bool) -> None:
    """Serve the dashboard with a local worker and sample jobs (for trying Jobwarden out)."""
    from .. import create_app

    os.environ.setdefault("JOBWARDEN_ENV", "development")
    # One key for this session, shared with the worker through the environment only.
    os.environ.setdefault("JOBWARDEN_INTERNAL_API_KEY", secrets.token_urlsafe(32))
    app = create_app()
    with app.app_context():
        created = seed_samples() if samples else 0
    server_url = f"http://{host}:{port}"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per poll and heartbeat
    server = make_server(host, port, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, name="dev-server", daemon=True)
    serving.start()

    def say(line: str) -> None:
        click.echo(f"jobwarden dev: {line}", err=True)

    worker = LocalWorker(worker_argv(server_url, concurrency), os.environ.copy(), say)
    click.echo(
        f"Jobwarden on {server_url}/jobs — store {app.config['SQLALCHEMY_DATABASE_URI']}, "
        f"{created} sample jobs created, local worker pid {worker.process.pid} "
        "(started again if it dies). Ctrl-C stops both.\n"
        "A second worker, from another terminal:\n"
        f"  {second_worker_command(server_url, os.environ['JOBWARDEN_INTERNAL_API_KEY'])}"
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker.watch(stop)
    # The worker first, while the server still answers: it hands its running jobs back.
    worker.stop()
    server.shutdown()
