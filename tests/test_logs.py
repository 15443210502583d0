"""Job logs through the real thing: a gunicorn server on loopback, real `jobwarden worker`
processes running real commands and Python handlers, read through GET /api/jobs/<id>/log."""

# ruff: noqa: F811  (pytest fixtures imported from test_worker_runner are parameters here)
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise

import pytest
import requests
from sqlalchemy import func, select

from webapp import jobs
from webapp.domain.limits import LOG_ITEM_MAX_BYTES
from webapp.domain.log_lines import parse
from webapp.store.extensions import db
from webapp.store.models import Job, JobLogChunk

from tests.support.server import PROJECT_ROOT, running_server
from tests.test_worker_runner import job, start_worker, status_is, wait_for  # noqa: F401

pytestmark = pytest.mark.slow

CAP = 256 * 1024


@pytest.fixture
def server(app, database_url, tmp_path):
    """A small log cap, so a flood goes over it; quick retries (the retry test)."""
    with running_server(
        database_url,
        tmp_path / "server.log",
        JOBWARDEN_LOG_MAX_BYTES=str(CAP),
        JOBWARDEN_RETRY_BASE_S="0.2",
        JOBWARDEN_RETRY_MAX_S="0.5",
    ) as running:
        yield running


def read_log(server, job_id: int, **params) -> dict:
    answer = requests.get(f"{server.url}/api/jobs/{job_id}/log", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def lines_of(text: str) -> list[str]:
    return [parse(line).text for line in text.splitlines()]


def streams_of(text: str) -> list[tuple[str | None, str]]:
    return [(parse(line).stream, parse(line).text) for line in text.splitlines()]


def test_a_flood_over_the_cap_keeps_the_beginning_and_the_end_and_counts_the_cut(server, start_worker):
    lines = 40_000  # 72 bytes a line and a 29-byte prefix: about 4 MB, 15 times the cap
    flood = jobs.create_job(type="test.log_flood", payload={"lines": lines})
    beside = jobs.create_job(type="test.step_sleep", payload={"seconds": 4})
    start_worker("--concurrency", "2", heartbeat=0.2)
    beats: list = []  # the other job's heartbeat_at, sampled from the start until it ends (the flood within)

    def ended(job_id: int) -> Callable[[], bool]:
        def check() -> bool:
            beats.append(job(beside.id).heartbeat_at)
            return job(job_id).status == "completed"

        return check

    wait_for(ended(flood.id), timeout=60, what="the flood completed")
    # A quick flood can be over within two heartbeats: the 4 s job beside it samples on.
    wait_for(ended(beside.id), timeout=30, what="the job beside it completed")
    log = read_log(server, flood.id)
    shown = lines_of(log["text"])
    assert shown[0] == "line 0000000 " + "x" * 60
    assert shown[-1] == f"line {lines - 1:07d} " + "x" * 60
    assert log["final"] is True and log["attempt"] == 1
    assert log["cut_bytes"] > 0
    marker = [line for line in shown if "bytes cut" in line]
    assert len(marker) == 1 and f"{log['cut_bytes']:,} bytes cut" in marker[0]
    kept = [line for line in shown if line.startswith("line ")]
    numbers = [int(line.split()[1]) for line in kept]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    # No line is lost: what is shown plus what was cut (or dropped by the worker, and said) is everything.
    dropped = sum(int(m.replace(",", "")) for m in re.findall(r"dropped ([\d,]+) lines", log["text"]))
    gap = numbers[-1] - numbers[0] + 1 - len(numbers)
    assert gap > 0 and dropped <= gap
    visible = len(log["text"].encode()) - len(("\n".join(marker) + "\n").encode())
    assert visible <= CAP
    # Stored, not just shown, within the cap (plus the eighth trimmed at a time and a piece).
    db.session.rollback()
    stored = db.session.scalar(select(func.sum(JobLogChunk.size)).where(JobLogChunk.job_id == flood.id))
    assert stored <= CAP + CAP // 8 + 2 * LOG_ITEM_MAX_BYTES
    # The other job's heartbeats (every 0.2 s) went on meanwhile (sampled by this test's
    # polling, itself slow on a loaded machine, so a gap of 2 s is allowed, not more).
    seen = sorted({beat for beat in beats if beat is not None})
    assert len(seen) >= 3, "the job beside the flood kept beating"
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(seen)]
    assert max(gaps) < 2.0, f"a heartbeat waited {max(gaps):.2f} s behind the flood"


def test_a_reader_follows_a_running_attempt_from_an_offset(server, start_worker):
    created = jobs.create_job(type="test.log_slow", payload={"lines": 12, "pause": 0.25})
    start_worker(heartbeat=0.5)
    wait_for(lambda: read_log(server, created.id)["text"], what="the first lines")
    offset, seen, reads = 0, [], 0
    while True:
        answer = read_log(server, created.id, offset=offset)
        assert answer["offset"] == offset
        seen += lines_of(answer["text"])
        offset = answer["next_offset"]
        reads += 1
        if answer["final"] and not answer["text"]:
            break
        time.sleep(0.2)
    assert seen == [f"tick {i}" for i in range(12)]  # every line once, in order, none twice
    assert reads > 3  # it was followed, not read at the end
    whole = read_log(server, created.id)
    assert whole["next_offset"] == offset == len(whole["text"].encode())
    middle = read_log(server, created.id, offset=offset // 2)
    assert whole["text"].encode()[offset // 2 :].decode() == middle["text"]
    as_text = requests.get(f"{server.url}/api/jobs/{created.id}/log", params={"format": "text"}, timeout=10)
    assert as_text.headers["Content-Type"].startswith("text/plain") and as_text.text == whole["text"]


def test_stdout_and_stderr_keep_their_streams_and_their_order(server, start_worker):
    created = jobs.create_job(type="test.log_interleaved")
    start_worker()
    wait_for(status_is(created.id, "completed"), what="completed")
    text = read_log(server, created.id)["text"]
    expected = [("out", f"out {i}") if i % 2 == 0 else ("err", f"err {i}") for i in range(6)]
    assert streams_of(text) == expected
    stamps = [parse(line).at for line in text.splitlines()]
    assert all(stamps) and stamps == sorted(stamps)


def test_two_handlers_in_one_worker_each_keep_their_own_print_logging_and_ctx_log(server, start_worker):
    first = jobs.create_job(type="test.log_python", payload={"name": "alpha", "lines": 8})
    second = jobs.create_job(type="test.log_python", payload={"name": "beta", "lines": 8})
    worker = start_worker("--concurrency", "2")
    wait_for(lambda: all(job(j.id).status == "completed" for j in (first, second)), what="both completed")
    for created, name, other in ((first, "alpha", "beta"), (second, "beta", "alpha")):
        text = read_log(server, created.id)["text"]
        assert other not in text
        mine = streams_of(text)
        for i in range(8):
            assert ("out", f"print {name} {i}") in mine
            assert ("err", f"stderr {name} {i}") in mine
            assert ("log", f"WARNING tests.handler: logging {name} {i}") in mine
            assert ("log", f"ctx {name} {i}") in mine
    # They overlapped (so routing, not luck, kept them apart); print went to the job alone
    # (logging records also reach the worker's own handlers, as they always did).
    first_job, second_job = job(first.id), job(second.id)
    assert first_job.started_at < second_job.finished_at and second_job.started_at < first_job.finished_at
    assert "print alpha" not in worker.log and "stderr beta" not in worker.log


def test_each_attempt_keeps_its_own_log_across_a_retry(server, start_worker):
    created = jobs.create_job(
        type="test.log_python", max_attempts=2, payload={"name": "gamma", "lines": 2, "fail_first": True}
    )
    start_worker()
    wait_for(status_is(created.id, "completed"), timeout=30, what="completed on the second attempt")
    assert job(created.id).attempt == 2
    first, second = read_log(server, created.id, attempt=1), read_log(server, created.id, attempt=2)
    assert first["attempt"] == 1 and second["attempt"] == 2 and first["final"] and second["final"]
    assert "RuntimeError: attempt 1 of gamma fails" in first["text"]
    assert "RuntimeError" not in second["text"]
    assert lines_of(second["text"]).count("print gamma 0") == 1
    assert read_log(server, created.id)["attempt"] == 2  # the newest by default


def test_the_log_of_an_attempt_that_failed_for_good_is_final(server, start_worker):
    """Its worker reported the failure after the last lines: nothing more can come. Before, the
    failed job kept its lease token, so its log read as still being written: the job page said
    "Following the running attempt" and asked for more every half second, for good."""
    created = jobs.create_job(
        type="test.log_python", max_attempts=1, payload={"name": "delta", "lines": 2, "fail_first": True}
    )
    start_worker()
    wait_for(status_is(created.id, "failed"), timeout=30, what="failed")
    answer = read_log(server, created.id)
    assert answer["attempt"] == 1 and answer["final"], answer
    assert "RuntimeError: attempt 1 of delta fails" in answer["text"]


def test_bad_log_requests_are_refused_by_name(server):
    created = jobs.create_job(type="test.log_slow", payload={"lines": 1, "pause": 0})
    url = f"{server.url}/api/jobs/{created.id}/log"
    for params, field in (({"attempt": "x"}, "attempt"), ({"attempt": "0"}, "attempt"), ({"offset": "-1"}, "offset")):
        answer = requests.get(url, params=params, timeout=10)
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    assert requests.get(url, params={"attempt": 3}, timeout=10).status_code == 404
    assert requests.get(f"{server.url}/api/jobs/999999/log", timeout=10).status_code == 404
    before = requests.get(url, timeout=10).json()
    assert before == {"attempt": None, "offset": 0, "next_offset": 0, "text": "", "cut_bytes": 0, "final": False}


def test_logs_go_with_their_job_when_it_is_deleted(server, start_worker):
    job_id = jobs.create_job(type="test.log_interleaved").id
    start_worker()
    wait_for(status_is(job_id, "completed"), what="completed")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(JobLogChunk).where(JobLogChunk.job_id == job_id))
    finished = job(job_id).finished_at
    assert jobs.prune_finished("completed", cutoff=finished.replace(year=finished.year + 1), batch_size=10) == 1
    db.session.rollback()
    assert not db.session.scalar(select(func.count()).select_from(Job).where(Job.id == job_id))
    assert not db.session.scalar(select(func.count()).select_from(JobLogChunk).where(JobLogChunk.job_id == job_id))


def test_the_cli_follows_a_running_attempt_until_it_ends(server, start_worker):
    created = jobs.create_job(type="test.log_slow", payload={"lines": 10, "pause": 0.2})
    follower = subprocess.Popen(
        [sys.executable, "-m", "webapp", "jobs", "logs", str(created.id), "--follow", "--server", server.url],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    start_worker()
    out, err = follower.communicate(timeout=60)  # it ends by itself when the attempt does
    assert follower.returncode == 0, err
    assert lines_of(out) == [f"tick {i}" for i in range(10)]
    again = subprocess.run(
        [sys.executable, "-m", "webapp", "jobs", "logs", str(created.id), "--attempt", "1", "--server", server.url],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert again.returncode == 0 and again.stdout == out
    missing = subprocess.run(
        [sys.executable, "-m", "webapp", "jobs", "logs", str(created.id), "--attempt", "5", "--server", server.url],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1 and "has no attempt 5" in missing.stderr
