"""Who says a worker lives (webapp.jobs.workers, webapp.server.presence): its heartbeats keep
an alive row fresh, but only its presence brings a gone one back. A heartbeat sent just before
its worker was killed can be answered after the death was recorded; the row then stays gone
(CI saw a killed worker's first heartbeat mark it alive after its death)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import insert, text

from benchmarks._support import wait_until
from webapp import jobs
from webapp.domain.timeutil import utcnow
from webapp.jobs import workers
from webapp.server import presence
from webapp.store.extensions import db
from webapp.store.models import Worker

from tests.conftest import postgresql_only


def state_of(worker_id: str) -> str:
    db.session.rollback()
    return db.session.get(Worker, worker_id).state


def test_a_heartbeat_answered_after_the_death_leaves_the_worker_gone(app):
    app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"] = 0.04  # refresh rows every 10 ms
    jobs.register_worker("w-late", hostname="h", pid=1)
    assert presence.declare_dead("w-late") == []

    jobs.register_worker("w-late", hostname="h", pid=1)  # within the refresh period: no write
    time.sleep(0.03)
    jobs.register_worker("w-late", hostname="h", pid=1)  # the refresh
    assert state_of("w-late") == "gone"
    jobs.register_worker("w-late", hostname="h", pid=1, concurrency=2)  # a change: a full save
    assert state_of("w-late") == "gone"
    assert db.session.get(Worker, "w-late").concurrency == 2


def test_a_worker_already_gone_does_not_die_again(app):
    """Two presence requests of one worker that drop together (killed while it presented itself
    again after a thaw, webapp.worker.runner) are one death: the second drop finds it gone."""
    jobs.register_worker("w-twice", hostname="h", pid=1)
    assert presence.declare_dead("w-twice") == []
    assert presence.declare_dead("w-twice") is None
    assert state_of("w-twice") == "gone"


def test_a_first_heartbeat_answered_after_the_death_leaves_the_worker_gone(app):
    """Killed before its first registration landed: the death is a row of its own."""
    assert presence.declare_dead("w-early") == []
    jobs.register_worker("w-early", hostname="h", pid=1)
    assert state_of("w-early") == "gone"


def test_its_presence_brings_a_gone_worker_back_and_its_heartbeats_keep_it(app):
    app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"] = 0.04
    jobs.register_worker("w-back", hostname="h", pid=1)
    presence.declare_dead("w-back")
    before = db.session.get(Worker, "w-back").last_seen_at

    assert presence.revive("w-back") is True
    assert state_of("w-back") == "alive" and db.session.get(Worker, "w-back").last_seen_at > before
    assert presence.revive("w-back") is False  # alive already: nothing written
    time.sleep(0.03)
    jobs.register_worker("w-back", hostname="h", pid=1)
    assert state_of("w-back") == "alive"


def test_a_gone_workers_heartbeats_tell_it_so_until_its_presence_revives_it(app):
    """The answer that makes a thawed worker present itself again (tests/test_worker_thaw.py). A
    job type's short timeout lets the monitor take a worker for gone long before this process's
    row is due a refresh: back from a silence of half that timeout, a heartbeat reads its row."""
    app.config["JOBWARDEN_HEARTBEAT_TIMEOUT"] = 60.0  # rows due a refresh after 15 s
    app.config["JOBWARDEN_TYPE_TIMEOUTS"] = {"quick": 0.2}
    assert jobs.register_worker("w-told", hostname="h", pid=1) is False
    presence.declare_dead("w-told")  # as the monitor does when its "quick" job falls silent

    time.sleep(0.15)
    assert jobs.register_worker("w-told", hostname="h", pid=1) is True
    assert jobs.register_worker("w-told", hostname="h", pid=1) is True  # not remembered as written
    assert state_of("w-told") == "gone"
    presence.revive("w-told")
    assert jobs.register_worker("w-told", hostname="h", pid=1) is False


def test_presence_does_not_undo_a_goodbye_but_a_new_process_under_the_id_lives(app):
    jobs.register_worker("w-again", hostname="h", pid=1)
    presence.say_goodbye("w-again")

    assert presence.revive("w-again") is False
    assert state_of("w-again") == "stopped"
    jobs.register_worker("w-again", hostname="h", pid=2)
    assert state_of("w-again") == "alive"


@postgresql_only
def test_a_death_racing_the_first_heartbeats_insert_is_recorded(app):
    """The first heartbeat's INSERT, uncommitted while the death is declared, commits first:
    the death still marks the row gone and says it died (its jobs are orphaned)."""
    heartbeat = db.engine.connect()
    heartbeat.execute(insert(Worker).values(id="w-racing", started_at=utcnow(), last_seen_at=utcnow(), state="alive"))
    answers = []

    def declare() -> None:
        with app.app_context():
            answers.append(presence.declare_dead("w-racing"))

    dying = threading.Thread(target=declare)
    dying.start()
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    wait_until(lambda: db.session.scalar(waiting) or db.session.rollback(), 10, "the death to wait for the INSERT")
    heartbeat.commit()
    heartbeat.close()
    dying.join(10)

    assert answers == [[]]
    assert state_of("w-racing") == "gone"


def test_a_refresh_that_forgets_a_worker_while_its_heartbeat_saves_it_breaks_no_later_heartbeat(app, monkeypatch):
    """Two server threads: one saves a worker back from a silence while another's grouped
    refresh, which read it as silent, forgets it (its last step, done here in the middle of
    the save). Every later heartbeat that refreshed rows then failed with a KeyError (500s
    from /api/internal/workers/heartbeat in the chaos test, a worker killed and its id heard
    again)."""
    registry = workers._registry()
    save = workers._save_worker

    def saved_while_a_refresh_forgets_it(worker_id: str, **fields) -> bool:
        with registry.lock:
            registry.written.pop(worker_id, None)
            registry.heard.pop(worker_id, None)
        return save(worker_id, **fields)

    monkeypatch.setattr(workers, "_save_worker", saved_while_a_refresh_forgets_it)
    jobs.register_worker("w1", concurrency=1)
    monkeypatch.setattr(workers, "_save_worker", save)
    jobs.register_worker("w2", concurrency=1)

    later = time.monotonic() + workers.refresh_s()
    monkeypatch.setattr(workers.time, "monotonic", lambda: later)
    assert jobs.register_worker("w2", concurrency=1) is False  # its refresh takes w1's row along
    assert state_of("w1") == state_of("w2") == "alive"
