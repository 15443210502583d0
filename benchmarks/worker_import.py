"""How long a worker takes to import, beside procrastinate's: the median cumulative
`-X importtime` of `webapp.worker` and of `procrastinate` over fresh interpreters. Also the
commands that only speak HTTP (`jobwarden jobs`, `submit`, …: webapp.cli.operator_commands)
beside the server's command group they loaded until 2026-12-07 (webapp.cli.server).

A worker is started often (a deploy, a crash, one per container), and what it imports is
also memory it keeps. tests/test_worker_resources.py holds the cause (no server package is
imported); this script measures the effect, as a benchmark rather than a timed test.

    .venv/bin/python benchmarks/worker_import.py --runs 15 [--skip-procrastinate]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.store import procrastinate_python  # noqa: E402


def cumulative_import_ms(python: str, module: str) -> float:
    """The cumulative time `-X importtime` reports for `module` in a fresh interpreter."""
    answer = subprocess.run(
        [python, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    for line in answer.stderr.splitlines():
        if line.startswith("import time:") and line.rsplit("|", 1)[1].strip() == module:
            return int(line.split("|")[1]) / 1000
    raise RuntimeError(f"{module} not in the import log of {python}")


def median_ms(python: str, module: str, runs: int) -> float:
    return statistics.median(cumulative_import_ms(python, module) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per module (default 15)")
    parser.add_argument("--skip-procrastinate", action="store_true")
    args = parser.parse_args()
    ours = median_ms(sys.executable, "webapp.worker", args.runs)
    print(f"import webapp.worker   median {ours:7.1f} ms over {args.runs} runs")
    operator = median_ms(sys.executable, "webapp.cli.operator_commands", args.runs)
    server = median_ms(sys.executable, "webapp.cli.server", args.runs)
    print(f"import webapp.cli.operator_commands   median {operator:7.1f} ms (jobwarden jobs, submit, …)")
    print(
        f"import webapp.cli.server              median {server:7.1f} ms (what they loaded before); ratio {operator / server:.2f}"
    )
    if args.skip_procrastinate:
        return
    theirs = median_ms(procrastinate_python(), "procrastinate", args.runs)
    print(f"import procrastinate   median {theirs:7.1f} ms over {args.runs} runs")
    print(f"ratio Jobwarden / procrastinate: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
