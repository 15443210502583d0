"""A unit of work that is one statement sends PostgreSQL that statement alone: no BEGIN before
it, no COMMIT after it (webapp.store.transaction, `one_statement`), and keeps what a transaction
gave it: committed when it returns, nothing left by one that raised, its notification delivered.

What the server received is what it logs: `log_statement = 'all'` with `client_min_messages =
'log'` sends each statement's log line back to the client as it arrives, psycopg hands it to a
notice handler, so BEGIN and COMMIT show even though psycopg sends them on its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from webapp import jobs
from webapp.jobs import audit, queues
from webapp.store import flow, wakeup
from webapp.store.extensions import db
from webapp.store.models import AuditEntry, Job, JobEvent

from tests.conftest import postgresql_only

pytestmark = postgresql_only


@pytest.fixture
def writing(app):
    """A write request, as the create and the claim are (pytest-flask's own context is a GET,
    whose transactions webapp.server.query_time bounds with a statement of their own)."""
    with app.test_request_context(method="POST"):
        yield app


@contextmanager
def statements_the_server_receives() -> Iterator[list[str]]:
    """The statements PostgreSQL receives on the app's connections, opened afresh for the block."""
    seen: list[str] = []

    def log_statements_to_us(dbapi_connection: psycopg.Connection, _record: object) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET log_statement = 'all'")
            cursor.execute("SET client_min_messages = 'log'")
        dbapi_connection.commit()
        dbapi_connection.add_notice_handler(lambda notice: seen.append(notice.message_primary or ""))

    db.session.remove()
    db.engine.dispose()  # every connection of the block is a new one, logging
    event.listen(db.engine.pool, "connect", log_statements_to_us)
    try:
        yield seen
    finally:
        db.session.remove()
        event.remove(db.engine.pool, "connect", log_statements_to_us)
        db.engine.dispose()


def _kinds(statements: list[str]) -> list[str]:
    """The first word of each statement, as logged: "statement: INSERT INTO …" (the simple
    protocol) or "execute <unnamed>: INSERT INTO …" (the extended one) → INSERT."""
    return [statement.split(": ", 1)[1].split()[0].upper() for statement in statements]


def test_an_audit_entry_is_one_statement_and_committed(app, writing):
    with statements_the_server_receives() as seen:
        audit.record(actor="alice", via="api", action="job.create", target="job 1")
        assert _kinds(seen) == ["INSERT"]
    # Read on a connection of the pool as it was before the block: the entry was committed.
    assert db.session.scalar(select(AuditEntry.actor)) == "alice"


def test_a_create_is_one_statement_and_still_notifies_other_processes(app, writing):
    listener = psycopg.connect(
        db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    )
    with listener:
        listener.execute(f"LISTEN {wakeup.CHANNEL}")
        with statements_the_server_receives() as seen:
            jobs.create_job(type="echo")
            assert _kinds(seen) == ["WITH"]  # the job, its event and its NOTIFY in one statement
        notifications = list(listener.notifies(timeout=5, stop_after=1))
    assert [notification.channel for notification in notifications] == [wakeup.CHANNEL]
    assert db.session.scalar(select(func.count()).select_from(JobEvent)) == 1


def test_a_create_through_the_api_of_an_install_without_users_stays_one_statement(app, client):
    """The sign-in check reads the users first (webapp.jobs.users.any_user): in the session's
    transaction that read made the create join it, BEGIN … COMMIT around both."""
    with statements_the_server_receives() as seen:
        response = client.post("/api/jobs", json={"type": "echo"})
        assert response.status_code == 201, response.json
        assert _kinds(seen) == ["SELECT", "WITH"]
    assert db.session.scalar(select(func.count()).select_from(Job)) == 1


def test_a_read_of_an_install_without_users_reads_them_before_its_bounded_transaction(app, client):
    """The users are read on their own in autocommit; the request's reads then begin their
    transaction and its bound (webapp.server.query_time), which outside a transaction would
    be a round trip that bounds nothing."""
    with statements_the_server_receives() as seen:
        assert client.get("/api/jobs").status_code == 200
        kinds = _kinds(seen)
    assert kinds[:3] == ["SELECT", "BEGIN", "SET"], kinds
    assert "users" in seen[0] and kinds.count("SET") == 1, seen


def test_a_one_statement_unit_that_raises_leaves_nothing(app, writing):
    too_big = 2**40  # `priority` is a 32-bit integer: PostgreSQL refuses the INSERT
    with statements_the_server_receives() as seen, pytest.raises(Exception, match="out of range"):
        jobs.create_job(type="echo", priority=too_big)
    assert "BEGIN" not in _kinds(seen)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0
    assert db.session.scalar(select(func.count()).select_from(JobEvent)) == 0


def test_the_connection_goes_back_to_the_pool_transactional(app, writing):
    """The next unit of work on the same pooled connection is a transaction again."""
    with statements_the_server_receives() as seen:
        audit.record(actor="alice", via="api", action="job.create")
        jobs.create_jobs([{"type": "echo"}, {"type": "echo"}])  # a batch: more than one statement
        assert db.engine.pool.checkedin() == 1  # one connection served both units
        kinds = _kinds(seen)
    assert kinds[0] == "INSERT"
    assert kinds[1] == "BEGIN" and kinds[-1] == "COMMIT", kinds


@pytest.fixture
def limits_read(monkeypatch):
    """The claim's once-a-second read of the queues' limits, done before the block and kept
    through it however slowly a loaded machine runs the test: the block holds the claim alone."""
    monkeypatch.setattr(flow, "LIMITS_IN_USE_TTL_S", 3600)
    return flow.limits_in_use


def test_a_claim_that_finds_its_job_at_once_is_one_statement(app, writing, limits_read):
    jobs.create_job(type="echo")
    limits_read()
    with statements_the_server_receives() as seen:
        (claimed,) = jobs.claim_jobs("w1", start=True)
        assert _kinds(seen) == ["WITH"]
    assert db.session.get(Job, claimed.id).status == "running"


def test_a_claim_in_a_limited_queue_takes_its_turn_and_claims_in_one_statement(app, writing, limits_read):
    queues.set_limits("slow", {"concurrency": 1}, actor="test")
    jobs.create_job(type="echo", queue="slow")
    limits_read()
    with statements_the_server_receives() as seen:
        (claimed,) = jobs.claim_jobs("w1", start=True)
        assert _kinds(seen) == ["WITH"]
    # The limited part runs first while limits are in use, its turn taken in the statement.
    assert "claim_turn" in seen[0] and "SKIP LOCKED" in seen[0]
    assert claimed.queue == "slow"


def _commit_once_waited_for(holder: psycopg.Connection, timeout_s: float = 30) -> None:
    """Commit `holder`'s transaction as soon as another backend waits for one of its locks.
    Read from pg_locks, which is live; pg_stat_activity would show this transaction's first
    look at it again and again."""
    waited_for = "SELECT count(*) FROM pg_locks WHERE NOT granted AND %s = ANY(pg_blocking_pids(pid))"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not holder.execute(waited_for, (holder.info.backend_pid,)).fetchone()[0]:
        time.sleep(0.01)
    holder.commit()


def test_a_claim_that_waits_for_a_turn_locks_and_claims_in_one_transaction(app, writing, limits_read):
    queues.set_limits("slow", {"concurrency": 1}, actor="test")
    jobs.create_job(type="echo", queue="slow")
    limits_read()
    holder = psycopg.connect(make_url(str(db.engine.url)).set(drivername="postgresql").render_as_string(False))
    holder.execute("SELECT name FROM queues WHERE name = 'slow' FOR UPDATE")  # another claimer's turn
    # The turn is given back once the claim waits for it (not after a fixed time, which a
    # loaded machine spent before the claim began: it then found the turn free at once).
    threading.Thread(target=_commit_once_waited_for, args=(holder,)).start()
    try:
        with statements_the_server_receives() as seen:
            (claimed,) = jobs.claim_jobs("w1", start=True)
            kinds = _kinds(seen)
    finally:
        holder.close()
    # The statement that missed the turn claimed nothing (in autocommit); the turn it waited
    # for and the claim it guards are one transaction: the lock is held until the claim commits.
    assert kinds == ["WITH", "BEGIN", "WITH", "WITH", "COMMIT"], kinds
    assert "FOR UPDATE" in seen[2] and "claim_turn" in seen[2]
    assert claimed.queue == "slow"
