"""Long-poll claims: a worker waiting on a real server starts a new job at once,
whether the job is created through the server, written to the store by another
process, re-queued, or due later; a waiting claim holds no database connection."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import text, update

from webapp import jobs
from webapp.client import JobwardenClient
from webapp.domain.timeutil import utcnow
from webapp.jobs import queues
from webapp.server import claim_wait
from webapp.server.claim_wait import peer_closed
from webapp.store import flow
from webapp.store.extensions import db
from webapp.store.models import Job, Worker
from webapp.worker.protocol import WorkerClient

from tests import test_worker_runner as runner
from tests.conftest import INTERNAL_KEY
from tests.support.server import running_server

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

server, start_worker = runner.server, runner.start_worker  # fixtures
attempts, job, status_is, wait_for = runner.attempts, runner.job, runner.status_is, runner.wait_for

# The worker claims with long polls; a poll interval this long means any quick start is a wake-up.
NO_POLLING = ("--poll-interval", "60")
PICKUP_BOUND_S = 1.0  # generous: without a wake-up the job would wait the whole claim wait (20 s)
KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}


def waiting_worker(start_worker):
    worker = start_worker(*NO_POLLING)
    wait_for(lambda: db.session.get(Worker, "w1"), what="the worker row")
    time.sleep(0.5)  # its first claim found nothing and now waits
    return worker


def pickup_s(job_id: int) -> float:
    wait_for(status_is(job_id, "running", "completed"), timeout=PICKUP_BOUND_S * 10, what="the job to start")
    started = job(job_id)
    return (started.started_at - started.created_at).total_seconds()


def test_a_job_created_through_the_server_starts_at_once(start_worker, server):
    waiting_worker(start_worker)
    created = JobwardenClient(server.url, timeout=30).create("demo.noop")
    assert pickup_s(created["id"]) < PICKUP_BOUND_S


def test_jobs_another_process_writes_to_the_store_start_at_once(start_worker):
    # Heartbeats rare: no other write lets the server notice a job it missed.
    start_worker(*NO_POLLING, heartbeat=30)
    wait_for(lambda: db.session.get(Worker, "w1"), what="the worker row")
    for _ in range(10):
        created = jobs.create_job(type="demo.noop")  # this test's process, not the server's
        assert pickup_s(created.id) < PICKUP_BOUND_S
        wait_for(status_is(created.id, "completed"), what="the job to complete")
        time.sleep(0.05)  # the worker is back in its waiting claim


def test_a_force_started_job_starts_at_once(start_worker):
    held = jobs.create_job(type="demo.noop", hold=True)
    waiting_worker(start_worker)
    jobs.force_start(held.id)
    wait_for(status_is(held.id, "completed"), timeout=PICKUP_BOUND_S * 10, what="the job to run")
    (attempt,) = attempts(held.id)
    forced = job(held.id)
    assert (attempt.claimed_at - forced.run_after).total_seconds() < PICKUP_BOUND_S


def test_a_retry_is_claimed_as_soon_as_its_backoff_ends(start_worker):
    created = jobs.create_job(type="demo.flaky", max_attempts=2)
    start_worker(*NO_POLLING)
    wait_for(status_is(created.id, "completed"), what="the retry to complete")
    first, second = attempts(created.id)
    due = job(created.id).run_after  # set by the retry: the first attempt's end plus the backoff
    assert due > first.finished_at
    assert 0 <= (second.claimed_at - due).total_seconds() < 0.5


def test_a_claim_that_begins_to_wait_is_woken_by_another_process_s_job_at_once(app, database_url, tmp_path):
    """The server's wake-up source idles while no claim waits; a claim beginning to wait
    wakes it, so a job another process creates at that moment is not left for a timer."""
    with running_server(database_url, tmp_path / "server.log", deployed=True, GUNICORN_WORKERS="1") as one_process:
        client = WorkerClient(one_process.url, internal_key=INTERNAL_KEY, timeout=30)
        answers: list[tuple[float, list]] = []

        def claim_waiting() -> None:
            claimed = client.claim("w1", ["demo.noop"], wait_s=5)
            answers.append((time.monotonic(), claimed))

        for _ in range(3):
            # A short wait that runs out: afterwards no claim waits and the wake-up source idles.
            assert client.claim("w1", ["demo.noop"], wait_s=0.2) == []
            time.sleep(0.05)
            waiting = threading.Thread(target=claim_waiting)
            waiting.start()
            time.sleep(0.05)  # the claim now waits
            created_at = time.monotonic()
            jobs.create_job(type="demo.noop")  # this test's process, not the server's
            waiting.join(timeout=10)
            answered_at, claimed = answers[-1]
            assert len(claimed) == 1
            assert answered_at - created_at < 0.4


@pytest.mark.parametrize("wait_s", [-1, 30.5, "soon"])
def test_wait_s_outside_0_to_30_is_refused_naming_the_field(server, wait_s):
    response = requests.post(
        f"{server.url}/api/internal/jobs/claim", headers=KEY, timeout=30, json={"worker_id": "w1", "wait_s": wait_s}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "wait_s"


def test_an_empty_claim_answers_after_wait_s(server):
    client = WorkerClient(server.url, internal_key=INTERNAL_KEY, timeout=30)
    assert client.claim("w1", ["demo.noop"]) == []  # the server's processes have booted
    started = time.monotonic()
    assert client.claim("w1", ["demo.noop"], wait_s=0.5) == []
    assert 0.45 <= time.monotonic() - started < 5


def test_a_stopped_worker_waiting_for_a_job_exits_at_once_and_claims_nothing(start_worker):
    worker = waiting_worker(start_worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=5) == 0
    created = jobs.create_job(type="demo.noop")
    time.sleep(1.0)  # the server's waiting claim wakes for it, sees the worker gone, and leaves it
    assert job(created.id).status == "queued"


def test_a_claim_hung_up_half_way_is_answered_at_once_and_claims_nothing(server):
    """A stopping worker half-closes its waiting claim: the server answers now (not after
    wait_s) with nothing claimed, and a job created afterwards stays queued."""
    client = WorkerClient(server.url, internal_key=INTERNAL_KEY, timeout=30)
    assert client.claim("w1", ["demo.noop"]) == []  # the server's processes have booted
    answers: list[tuple[float, list]] = []

    def claim_waiting() -> None:
        claimed = client.claim("w1", ["demo.noop"], wait_s=20)
        answers.append((time.monotonic(), claimed))

    waiting = threading.Thread(target=claim_waiting)
    waiting.start()
    time.sleep(0.5)  # the claim waits at the server
    hung_up_at = time.monotonic()
    client.hang_up_claims()
    waiting.join(timeout=10)
    assert answers, "the hung-up claim was not answered"
    answered_at, claimed = answers[0]
    assert claimed == [] and answered_at - hung_up_at < 2.0
    created = jobs.create_job(type="demo.noop")
    time.sleep(0.5)
    assert job(created.id).status == "queued"
    assert client.claim("w1", ["demo.noop"], wait_s=5) == []  # later claims are not sent


def connections_in_use(server, database_url: str) -> int:
    """Database connections the server holds open in a transaction (PostgreSQL) or at all (SQLite)."""
    if database_url.startswith("postgresql"):
        count = db.session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = :database AND pid <> pg_backend_pid() "
                "AND state <> 'idle'"
            ),
            {"database": db.engine.url.database},
        ).scalar()
        db.session.rollback()
        return count
    # SQLite connections are not pooled: an open one has the store's WAL file open in a server
    # process (not its database file: while another connection of the process holds locks on
    # it, SQLite keeps a closed connection's descriptor of the database file for reuse). While
    # claims wait, each process's wake-up watcher keeps one connection of its own
    # (webapp.store.wakeup), however many claims wait: that one is not counted.
    wal_file = Path(f"{Path(db.engine.url.database).resolve()}-wal")
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    held = 0
    for pid in children:
        in_process = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                in_process += Path(os.readlink(fd)) == wal_file
            except FileNotFoundError:
                continue
        held += max(0, in_process - 1)
    return held


IDLE_WORKERS = 200
CLAIM_WAIT_S = 20  # long enough for a loaded machine to get through 200 first claims


def test_200_waiting_claims_hold_no_database_connection_and_the_dashboard_answers(app, database_url, tmp_path):
    with running_server(database_url, tmp_path / "server.log", deployed=True) as deployed:
        client = WorkerClient(deployed.url, internal_key=INTERNAL_KEY, timeout=30)
        client.claim("w0", ["nobody.runs.this"])  # the server's processes have booted
        waiting = [
            threading.Thread(target=client.claim, args=(f"w{n}", ["nobody.runs.this"]), kwargs={"wait_s": CLAIM_WAIT_S})
            for n in range(IDLE_WORKERS)
        ]
        for thread in waiting:
            thread.start()
        # Each claim looks for a job first (a connection, briefly), then waits without one.
        deadline = time.monotonic() + CLAIM_WAIT_S - 5
        while (held := connections_in_use(deployed, database_url)) and time.monotonic() < deadline:
            time.sleep(0.2)
        page = requests.get(f"{deployed.url}/jobs", timeout=10)
        # Answered while every claim still waits: not after a claim gave its thread or connection back.
        still_waiting = sum(thread.is_alive() for thread in waiting)
        for thread in waiting:
            thread.join()
    assert held == 0, f"{held} database connections held while {IDLE_WORKERS} claims waited"
    assert page.status_code == 200
    assert still_waiting == IDLE_WORKERS


def test_a_waiting_claim_that_receives_more_bytes_is_refused_at_once_instead_of_spinning(server):
    """Bytes after the claim are not a hang-up: the socket stays readable, and a claim that
    took them for one looked again at once, forever (5,000 claim statements in 9 s). It is
    answered 400 now, not 200 after wait_s."""
    WorkerClient(server.url, internal_key=INTERNAL_KEY, timeout=30).claim("w1", ["demo.noop"])  # booted
    body = json.dumps({"worker_id": "w1", "types": ["demo.noop"], "wait_s": 20}).encode()
    head = (
        f"POST /api/internal/jobs/claim HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {INTERNAL_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(head + body)
        time.sleep(0.5)  # the claim waits at the server
        sent_at = time.monotonic()
        connection.sendall(b"x")
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        refusal = json.loads(answer.read())
        answered_in = time.monotonic() - sent_at
    assert answer.status == 400 and refusal["field"] == "wait_s", refusal
    assert answered_in < 2.0


def test_a_hang_up_is_told_from_bytes_on_a_descriptor_past_1023():
    """A server holding a thousand workers' connections has descriptors past select()'s range;
    there select raised, and a presence or claim that received bytes was taken for a hang-up."""
    ours, theirs = socket.socketpair()
    high = os.dup2(ours.fileno(), 1500)
    sock = socket.socket(fileno=high)
    try:
        assert not peer_closed(sock)
        theirs.sendall(b"x")
        assert not peer_closed(sock)  # bytes, not a hang-up
        theirs.shutdown(socket.SHUT_WR)
        sock.recv(1)
        assert peer_closed(sock)
    finally:
        sock.close()
        ours.close()
        theirs.close()


@pytest.mark.parametrize("held_by", ["a paused queue", "a full concurrency limit"])
def test_a_waiting_claim_does_not_spin_on_a_due_job_its_queue_holds(app, client, monkeypatch, held_by):
    """The wait took a due job that a claim left queued for one not yet due, and woke for it at
    once, again and again: 730 claim statements in 2 s for one waiting claim while a queue was
    paused, 1,189 while a concurrency limit was full (every idle worker of a GPU queue)."""
    if held_by == "a paused queue":
        jobs.create_job(type="train", queue="gpu")
        queues.pause("gpu", actor="ops")
    else:
        queues.set_limits("gpu", {"concurrency": 1}, actor="ops")
        jobs.create_jobs([{"type": "train", "queue": "gpu"}] * 2)
        assert len(jobs.claim_jobs("busy", batch_size=1)) == 1
    rounds: list[int] = []
    claim_once = claim_wait._claim
    monkeypatch.setattr(claim_wait, "_claim", lambda *args: rounds.append(1) or claim_once(*args))

    answer = client.post(
        "/api/internal/jobs/claim",
        json={"worker_id": "w1", "types": ["train"], "batch_size": 1, "wait_s": 1.0},
        headers={"Authorization": f"Bearer {INTERNAL_KEY}"},
    )

    assert answer.status_code == 200 and answer.json["jobs"] == []
    # The first look, then for a limited queue one look each FLOW_RECHECK_S (held_back_until).
    assert len(rounds) <= 2 + 1.0 / flow.FLOW_RECHECK_S, len(rounds)


def test_a_job_that_comes_due_while_the_claim_looks_is_claimed_at_once(app, client, monkeypatch):
    """On a loaded machine a claim and its read of when the next job is due can be a second
    apart: a job due between them was taken for one its queue holds, and the claim waited out
    its whole wait (a retry claimed 19.9 s after its backoff ended, in a loaded run of the
    test above)."""
    job_id = jobs.create_job(type="train").id
    due_in(job_id, seconds=60)
    # The create's wake-up (PostgreSQL's notification; the SQLite watcher's first look) goes
    # to this claim, so only the job coming due can end the next one's wait early.
    assert claim_train(client, wait_s=0.5) == []
    due_in(job_id, seconds=0.2)
    claim_once = claim_wait._claim

    def loaded_claim(*args):
        claimed = claim_once(*args)
        time.sleep(0.4)  # the job comes due after this claim looked, before the wait asks what is due
        return claimed

    monkeypatch.setattr(claim_wait, "_claim", loaded_claim)
    asked = time.monotonic()

    assert claim_train(client, wait_s=6.0) == [job_id]
    assert time.monotonic() - asked < 3.0  # two claims (0.8 s), not a claim, the whole wait and another (6.8 s)


@pytest.mark.parametrize("job_comes", ["before the claim", "while it waits"])
def test_a_claim_whose_worker_died_takes_nothing_though_the_watcher_has_not_said_so(
    app, client, monkeypatch, job_comes
):
    """A killed worker's sockets close together; its presence's drop orphans its job, which
    can wake its own waiting claim before the hang-up watcher reports that claim's socket.
    The claim took the next job into the dead socket (tests/test_flow_workers.py saw it: the
    job's first attempt spent on nobody)."""
    ours, theirs = socket.socketpair()
    theirs.close()  # the worker is gone
    monkeypatch.setattr(claim_wait, "client_socket", lambda: ours)

    @contextlib.contextmanager
    def late_watcher(sock, on_hang_up):
        yield  # it reports nothing in time

    monkeypatch.setattr(claim_wait.hangups, "watching", late_watcher)
    if job_comes == "before the claim":
        job_id = jobs.create_job(type="train").id
    else:
        created: list[int] = []

        def create() -> None:
            with app.app_context():
                created.append(jobs.create_job(type="train").id)

        later = threading.Timer(0.3, create)
        later.start()
    try:
        assert claim_train(client, wait_s=2.0) == []
    finally:
        ours.close()
    if job_comes == "while it waits":
        later.join()
        (job_id,) = created
    db.session.rollback()
    assert db.session.get(Job, job_id).status == "queued"


def due_in(job_id: int, *, seconds: float) -> None:
    db.session.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow() + timedelta(seconds=seconds)))
    db.session.commit()


def claim_train(client, *, wait_s: float) -> list[int]:
    answer = client.post(
        "/api/internal/jobs/claim",
        json={"worker_id": "w1", "types": ["train"], "batch_size": 1, "wait_s": wait_s},
        headers=KEY,
    )
    return [claimed["id"] for claimed in answer.json["jobs"]]
