"""An idle server sleeps: with claims waiting and nothing to do, a process wakes a few times a
second (gunicorn's loop; on SQLite the watcher's safety tick), not eleven times as when
psycopg's notifies() made the PostgreSQL listener look every 0.1 s. Counted as the kernel
counts them: every thread's voluntary context switches, one per sleep begun."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from webapp.worker.protocol import WorkerClient

from tests.conftest import INTERNAL_KEY
from tests.support.server import running_server

pytestmark = pytest.mark.slow

WAITING_CLAIMS = 4  # the process that takes the first starts its listener or watcher
WINDOW_S = 3.0
# Measured: 1-3.3 a second per process (gunicorn's worker loop once a second, the SQLite
# watcher's tick once or twice more); with the listener looking every 0.1 s, 11.
MOST_WAKEUPS_PER_S = 5.0


def wakeups(pid: int) -> int:
    """Sleeps ended so far, summed over the process's threads."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("voluntary_ctxt"))
    return total


def test_an_idle_server_process_with_claims_waiting_wakes_about_once_a_second(app, database_url, tmp_path):
    with running_server(database_url, tmp_path / "server.log", deployed=True) as server:
        claimer = WorkerClient(server.url, internal_key=INTERNAL_KEY, timeout=30)
        threads = [
            threading.Thread(target=claimer.claim, args=(f"idle{n}", ["demo.noop"]), kwargs={"wait_s": 30})
            for n in range(WAITING_CLAIMS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the claims are waiting and each process's listener or watcher has started
        master = server.process.pid
        processes = [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
        before = {pid: wakeups(pid) for pid in processes}
        started = time.monotonic()
        time.sleep(WINDOW_S)
        per_second = {pid: (wakeups(pid) - before[pid]) / (time.monotonic() - started) for pid in processes}
        claimer.hang_up_claims()
        for thread in threads:
            thread.join(timeout=10)

    assert max(per_second.values()) <= MOST_WAKEUPS_PER_S, per_second
