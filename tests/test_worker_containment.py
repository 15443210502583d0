"""No process started for a job outlives its worker: a real `jobwarden worker` on
a real server (each database) is killed with SIGKILL while its command and the
command's grandchild both ignore SIGTERM; all of them are gone within the
heartbeat interval + 2 s. A worker restarted on the same host never runs beside
an earlier copy, and a worker that is PID 1 (its own PID namespace, as in a
container without an init) reaps everything its commands leave behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from webapp import jobs
from webapp.store.extensions import db

from tests.support.processes import alive, marked, zombie_children
from tests.support.server import running_server
from tests.support.worker_process import launch_worker, wait_for

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

HEARTBEAT_S = 0.3
BOUND_S = HEARTBEAT_S + 2.0


def start_worker(server_url: str, worker_id: str, tmp_path, *, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    options = ("--types", "*", "--worker-id", worker_id, "--heartbeat-interval", str(HEARTBEAT_S))
    options += ("--poll-interval", "0.1", "--grace", "5")
    log_path = tmp_path / f"{worker_id}.log"
    return launch_worker(server_url, log_path, *options, handlers=("tests.support.worker_handlers",), prefix=prefix)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def family(marker: str) -> list[int]:
    """Every process of the job, once the command's grandchild runs."""
    pids = marked(marker)
    return pids if any(_is_grandchild(pid) for pid in pids) else []


def _is_grandchild(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            args = cmdline.read().split(b"\0")
    except OSError:
        return False
    return len(args) > 2 and args[1] == b"-c" and args[2].startswith(b"import signal, time;")


def test_sigkill_of_a_worker_takes_its_stubborn_command_and_grandchild_with_it(server, tmp_path):
    marker = f"jw-contain-{uuid.uuid4().hex}"
    jobs.create_job(type="test.stubborn_family", payload={"marker": marker})
    worker = start_worker(server.url, "w-doomed", tmp_path)
    try:
        pids = wait_for(lambda: family(marker), 30, "the command and its grandchild to run")
        os.kill(worker.pid, signal.SIGKILL)  # the worker alone: its commands are in sessions of their own
        killed_at = time.monotonic()
        worker.wait()
        wait_for(lambda: not any(alive(pid) for pid in pids), BOUND_S + 5, "the job's processes to end")
        took = time.monotonic() - killed_at
    finally:
        stop(worker)
    assert took <= BOUND_S, f"the job's processes outlived the worker by {took:.2f} s"
    assert marked(marker) == []


@pytest.fixture
def monitored_server(app, database_url, tmp_path):
    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_MONITOR="on",
        JOBWARDEN_MONITOR_INTERVAL="0.5",
        JOBWARDEN_HEARTBEAT_TIMEOUT="2",
    ) as server:
        yield server


def test_a_restarted_worker_never_runs_beside_an_earlier_copy(monitored_server, tmp_path):
    marker = f"jw-contain-{uuid.uuid4().hex}"
    job = jobs.create_job(type="test.stubborn_family", payload={"marker": marker}, max_attempts=2)
    first = start_worker(monitored_server.url, "w-first", tmp_path)
    second = None
    try:
        earlier = wait_for(lambda: family(marker), 30, "the first copy to run")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        second = start_worker(monitored_server.url, "w-second", tmp_path)  # at once, on the same host
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # every moment until the second copy runs: never both
            now = set(marked(marker))
            seen |= now
            assert not (now & set(earlier) and now - set(earlier)), "the earlier copy ran beside the new one"
            db.session.rollback()
            if jobs.get_job(job.id).attempt == 2 and family(marker) and not now & set(earlier):
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the second worker never ran the job again")
        assert not any(alive(pid) for pid in earlier)
        assert jobs.get_job(job.id).worker_id == "w-second"
    finally:
        stop(first)
        if second is not None:
            stop(second)
    wait_for(lambda: not marked(marker), BOUND_S + 5, "the second copy to die with its worker")


def test_a_worker_that_is_pid_1_reaps_what_its_commands_leave_behind(server, tmp_path):
    unshare = shutil.which("unshare")
    assert unshare, "this test needs util-linux unshare (a PID namespace makes the worker PID 1)"
    marker = f"jw-contain-{uuid.uuid4().hex}"
    ids = [jobs.create_job(type="test.short_orphan", payload={"marker": marker}).id for _ in range(3)]
    worker = start_worker(
        server.url, "w-init", tmp_path, prefix=(unshare, "--user", "--map-root-user", "--pid", "--fork", "--mount-proc")
    )
    try:
        wait_for(
            lambda: all(jobs.get_job(i).status == "completed" for i in ids),
            30,
            "every job to complete (a worker counting zombies waits forever)",
        )
        (init,) = [pid for pid in marked("webapp") if _parent(pid) == worker.pid]  # the worker, PID 1 inside
        time.sleep(1.0)  # the grandchildren have ended by now
        assert zombie_children(init) == []
        assert marked(marker) == []
    finally:
        stop(worker)


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return None
