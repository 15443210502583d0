"""A worker's log during a server outage tells it as it happened: one line when the
outage begins, one when the server really answers again, and retries that back off
to the cap in between (a real gunicorn server stopped and started again, a real
worker process running a job through it)."""

from __future__ import annotations

import re
import signal
from itertools import pairwise

from webapp import jobs

from tests.support.worker_process import running_worker, wait_for

RETRY_MAX_S = 2.0
JITTER = 0.2  # backoff.backoff_delay's default, which the worker uses


def retry_delays(log: str, job_id: int) -> list[float]:
    return [float(s) for s in re.findall(rf"job {job_id}: server (?:still )?unreachable .*retrying in ([\d.]+) s", log)]


def test_an_outage_is_logged_once_each_way_and_the_retries_back_off_to_the_cap(server, tmp_path):
    job = jobs.create_job(type="demo.sleep", payload={"seconds": 120})
    log_path = tmp_path / "worker.log"
    with running_worker(
        server.url,
        log_path,
        "w-outage",
        "--heartbeat-interval",
        "0.2",
        "--retry-max",
        str(RETRY_MAX_S),
        "--log-level",
        "debug",
    ):
        # The worker has the job, not only the store: the claim that starts it commits
        # `running` before its answer is sent, and a server killed in between leaves the
        # worker without the job (it is the monitor's to orphan then) and so without its retries.
        wait_for(
            lambda: f"job {job.id} (demo.sleep): attempt 1" in log_path.read_text(),
            what="the worker to start the job",
            logs=(log_path,),
        )
        server.stop(signal.SIGKILL)
        # down until the job's backoff has reached the cap and stayed there for a while
        wait_for(
            lambda: len(retry_delays(log_path.read_text(), job.id)) >= 6,
            timeout=60,
            what="six retries",
            logs=(log_path, server.log_path),
        )
        down_log = log_path.read_text()
        server.start()
        wait_for(lambda: "the server answers again" in log_path.read_text(), what="the server's answer to be noticed")
        wait_for(lambda: jobs.get_job(job.id).heartbeat_at is not None, what="a heartbeat")
        log = log_path.read_text()

    assert "answers again" not in down_log  # nothing answered while the server was down
    warnings = [line for line in log.splitlines() if " WARNING " in line and "unreachable" in line]
    assert len(warnings) == 1, warnings
    assert len(re.findall("the server answers again", log)) == 1
    assert log.index("the server answers again") > len(down_log)

    delays = retry_delays(down_log, job.id)
    assert delays[0] <= 1.0 * (1 + JITTER)  # 0.5 s, then doubling …
    reached = next(i for i, delay in enumerate(delays) if delay >= RETRY_MAX_S * (1 - JITTER))
    assert all(later >= RETRY_MAX_S * (1 - JITTER) for later in delays[reached:])  # … and staying at the cap
    assert all(b >= a * 2 * (1 - JITTER) / (1 + JITTER) for a, b in pairwise(delays[: reached + 1]))
