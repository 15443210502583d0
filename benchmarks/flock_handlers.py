"""`live.flock`: a command job whose copies hold one lock file per job (benchmarks/flock_job.py),
so two live copies of one job leave a line in the run's `overlaps` file. The worker's `--handlers`
module in benchmarks/live_copy.py and tests/test_live_copy.py."""

from __future__ import annotations

import sys
from pathlib import Path

from webapp.worker import Registry

registry = Registry()

registry.command(
    "live.flock", [sys.executable, str(Path(__file__).with_name("flock_job.py")), "{dir}", "{key}", "{seconds}"]
)
