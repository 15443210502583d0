"""Where a pickup's milliseconds go: the timeline of one job from its create request to its
start, on a real server (gunicorn with the package's settings) and one `jobwarden worker` with
default settings, as benchmarks/pickup.py runs them.

Every process is started with benchmarks/timeline_probe first on its PYTHONPATH: its
sitecustomize wraps the functions a pickup passes through (the create and claim statements, the
commit's wake-up, the hub's wake, the requests, the worker's claim answer and start report) and
appends wall-clock marks to one file. For each of --jobs jobs created one at a time (each once
the previous one finished, so the worker is always waiting), every mark's first time after the
create request began is taken; printed: the median and p90 of each, in order.

    .venv/bin/python benchmarks/pickup_timeline.py --backends postgresql,sqlite --jobs 100
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "benchmarks" / "timeline_probe"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pickup import jobwarden_database, wait_finished  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from benchmarks._support import (  # noqa: E402
    DEFAULT_POSTGRES,
    INTERNAL_KEY,
    add_database_prefix_option,
    app_config,
    running_server,
)
from webapp import create_app  # noqa: E402
from webapp.client import JobwardenClient  # noqa: E402
from webapp.store.extensions import db  # noqa: E402

CREATE = "client:create request"


def client_mark(path: Path, name: str) -> None:
    with path.open("a") as marks:
        marks.write(f"{time.time_ns()} {os.getpid()} {name}\n")


def run(backend: str, args: argparse.Namespace) -> None:
    with (
        jobwarden_database(backend, args.postgres, args.database_prefix) as url,
        tempfile.TemporaryDirectory() as scratch,
    ):
        marks = Path(scratch) / "marks"
        app = create_app(app_config(url))
        with app.app_context():
            db.create_all()
            db.engine.dispose()
        probed = {"PYTHONPATH": f"{PROBE}:{ROOT}", "JOBWARDEN_TIMELINE": str(marks)}
        with running_server(url, Path(scratch) / "server.log", deployed=True, **probed) as server:
            env = {**os.environ, "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY, **probed}
            worker = subprocess.Popen(
                [sys.executable, "-m", "webapp", "worker", "--server", server.url, "--types", "demo.noop"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                api = JobwardenClient(server.url, timeout=30)
                engine = create_engine(url)
                wait_finished(engine, api.create("demo.noop")["id"])  # warm-up
                time.sleep(1)
                marks.unlink()
                for _ in range(args.jobs):
                    client_mark(marks, f"{CREATE}:begin")
                    created = api.create("demo.noop")
                    client_mark(marks, f"{CREATE}:end")
                    wait_finished(engine, created["id"])
                    time.sleep(args.gap_s)  # the worker's next claim is waiting again
                engine.dispose()
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
        report(backend, marks.read_text().splitlines())


def report(backend: str, lines: list[str]) -> None:
    offsets: dict[str, list[float]] = defaultdict(list)
    window: dict[str, float] = {}
    start = 0
    for line in sorted(lines, key=lambda line: int(line.split(" ", 1)[0])):
        at_ns, _pid, name = line.split(" ", 2)
        at = int(at_ns)
        if name == f"{CREATE}:begin":
            for seen, offset in window.items():
                offsets[seen].append(offset)
            window, start = {}, at
        if start and name not in window:
            window[name] = (at - start) / 1e6
    for seen, offset in window.items():
        offsets[seen].append(offset)
    print(f"\n{backend}: first time of each mark after the create request began (ms)")
    print(f"{'mark':<48} {'p50':>7} {'p90':>7} {'jobs':>5}")
    for name, values in sorted(offsets.items(), key=lambda item: statistics.median(item[1])):
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        print(f"{name:<48} {statistics.median(values):7.2f} {p90:7.2f} {len(values):5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs per backend (default 100)")
    parser.add_argument("--gap-s", type=float, default=0.05, help="pause after each job finished (default 0.05)")
    parser.add_argument("--backends", default="postgresql,sqlite", help="backends (default both)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        run(backend, args)


if __name__ == "__main__":
    main()
