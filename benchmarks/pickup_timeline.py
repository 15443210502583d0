"""Where a pickup's milliseconds go: the timeline of one job from its create request to its
start, on a real server (gunicorn with the package's settings) and one `jobwarden worker` with
default settings, as benchmarks/pickup.py runs them.

Every process is started with benchmarks/timeline_probe first on its PYTHONPATH: its
sitecustomize wraps the functions a pickup passes through (the create and claim statements, the
commit's wake-up, the hub's wake, the requests, the worker's claim answer and start report) and
appends wall-clock marks to one file. For each of --jobs jobs created one at a time (each once
the previous one finished, so the worker is always waiting), every mark's first time after the
create request began is taken; printed: the median and p90 of each, in order, and how many
times the mark came per job (a second claim round shows there, not in the first time). Then the
claim round that took each job, per job: its length, the turns it waited for within it (a
claim that missed a limited queue's turn, webapp/store/flow.py), and what came
between the hub's wake and the round, and between the round and the worker's start.

With --limits the jobs are in a limited queue, as benchmarks/pickup.py --limits puts them
(`concurrency` and `key_concurrency` never binding, a key per job out of --keys), so every
claim takes the limited part (webapp/store/flow.py): compare its marks with a run without.

    .venv/bin/python benchmarks/pickup_timeline.py --backends postgresql,sqlite --jobs 100
    .venv/bin/python benchmarks/pickup_timeline.py --backends postgresql --limits
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

from pickup import LIMITED_QUEUE, jobwarden_database, wait_finished  # noqa: E402
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
            if args.limits:
                from webapp.jobs import queues

                queues.set_limits(LIMITED_QUEUE, {"concurrency": 1_000, "key_concurrency": 1}, actor="bench")
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
                for number in range(args.jobs):
                    spec = (
                        {"queue": LIMITED_QUEUE, "concurrency_key": f"key-{number % args.keys}"} if args.limits else {}
                    )
                    client_mark(marks, f"{CREATE}:begin")
                    created = api.create("demo.noop", **spec)
                    client_mark(marks, f"{CREATE}:end")
                    wait_finished(engine, created["id"])
                    time.sleep(args.gap_s)  # the worker's next claim is waiting again
                engine.dispose()
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
        if args.keep_marks:
            Path(args.keep_marks).write_text(marks.read_text())
        lines = marks.read_text().splitlines()
        label = f"{backend}{', limits on' if args.limits else ''}"
        report(label, lines)
        report_taking_round(label, lines)


def report(label: str, lines: list[str]) -> None:
    offsets: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    window: dict[str, float] = {}
    start = 0
    jobs = 0
    for line in sorted(lines, key=lambda line: int(line.split(" ", 1)[0])):
        at_ns, _pid, name = line.split(" ", 2)
        at = int(at_ns)
        if name == f"{CREATE}:begin":
            for seen, offset in window.items():
                offsets[seen].append(offset)
            window, start, jobs = {}, at, jobs + 1
        if start:
            counts[name] += 1
            window.setdefault(name, (at - start) / 1e6)
    for seen, offset in window.items():
        offsets[seen].append(offset)
    print(f"\n{label}: first time of each mark after the create request began (ms), and its calls per job")
    print(f"{'mark':<48} {'p50':>7} {'p90':>7} {'jobs':>5} {'per job':>7}")
    for name, values in sorted(offsets.items(), key=lambda item: statistics.median(item[1])):
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        print(f"{name:<48} {statistics.median(values):7.2f} {p90:7.2f} {len(values):5} {counts[name] / jobs:7.2f}")


def windows(lines: list[str]) -> list[list[tuple[float, str]]]:
    """The marks (ms, name) from each create request's beginning to the next one's."""
    found: list[list[tuple[float, str]]] = []
    for line in sorted(lines, key=lambda line: int(line.split(" ", 1)[0])):
        at_ns, _pid, name = line.split(" ", 2)
        if name == f"{CREATE}:begin":
            found.append([])
        if found:
            found[-1].append((int(at_ns) / 1e6, name))
    return found


def report_taking_round(label: str, lines: list[str]) -> None:
    intervals: dict[str, list[float]] = defaultdict(list)
    for window in windows(lines):
        names = [name for _, name in window]
        if "worker:attempt begins" not in names:
            continue
        began = names.index("worker:attempt begins")
        claim = max(i for i in range(began) if names[i] == "server:claim statement:begin")
        claimed = names.index("server:claim statement:end", claim)
        at = [moment for moment, _ in window]
        intervals["claim round that took the job"].append(at[claimed] - at[claim])
        if "server:take turns:begin" in names[claim:claimed]:
            turns = names.index("server:take turns:begin", claim)
            intervals["  turns waited for within it"].append(
                at[names.index("server:take turns:end", turns)] - at[turns]
            )
        woken = [i for i in range(claim) if names[i] == "server:hub woken"]
        if woken:
            intervals["hub woken -> that round begins"].append(at[claim] - at[woken[-1]])
        intervals["that round ends -> worker:attempt begins"].append(at[began] - at[claimed])
    print(f"\n{label}: the claim round that took each job (ms, per job)")
    print(f"{'interval':<48} {'p50':>7} {'p90':>7} {'jobs':>5}")
    for name, values in intervals.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        print(f"{name:<48} {statistics.median(values):7.2f} {p90:7.2f} {len(values):5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs per backend (default 100)")
    parser.add_argument("--gap-s", type=float, default=0.05, help="pause after each job finished (default 0.05)")
    parser.add_argument("--backends", default="postgresql,sqlite", help="backends (default both)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="PostgreSQL server URL")
    parser.add_argument("--limits", action="store_true", help="the jobs in a limited queue (see above)")
    parser.add_argument("--keys", type=int, default=100, help="concurrency keys with --limits (default 100)")
    parser.add_argument("--keep-marks", default=None, help="copy the marks (`ns pid mark` lines) to this file")
    add_database_prefix_option(parser)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        run(backend, args)


if __name__ == "__main__":
    main()
