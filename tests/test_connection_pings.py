"""Pooled PostgreSQL connections are pinged only after they sat idle (webapp.store.pings): a
request on a connection that answered moments ago sends no `SELECT 1` first, and a connection
that died while idle is still replaced before a request uses it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from webapp.store.extensions import db
from webapp.store.pings import ALIVE_BYPASS_S

from tests.conftest import postgresql_only

pytestmark = postgresql_only


@contextmanager
def pings_sent() -> Iterator[list[float]]:
    """When the app's engine pinged a connection, while the block runs (the dialect's own ping, counted)."""
    dialect = db.engine.dialect
    seen: list[float] = []
    original = dialect.do_ping

    def counted(dbapi_connection) -> bool:
        seen.append(time.monotonic())
        return original(dbapi_connection)

    dialect.do_ping = counted  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del dialect.do_ping


def test_requests_in_a_row_send_no_ping_before_their_transactions(app):
    client = app.test_client()
    assert client.post("/api/jobs", json={"type": "warm-up"}).status_code == 201
    with pings_sent() as pings:
        for number in range(10):
            assert client.post("/api/jobs", json={"type": f"t{number}"}).status_code == 201
            listed = client.get("/api/jobs")
            assert listed.status_code == 200
    assert pings == []  # pool_pre_ping sent one per transaction: 30 or more


def test_a_connection_killed_while_idle_is_replaced_before_a_request_uses_it(app, database_url):
    client = app.test_client()
    assert client.post("/api/jobs", json={"type": "before"}).status_code == 201
    admin = create_engine(make_url(database_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar()
    finally:
        admin.dispose()
    assert killed >= 1  # the app's pooled connection
    time.sleep(ALIVE_BYPASS_S + 0.1)
    with pings_sent() as pings:
        created = client.post("/api/jobs", json={"type": "after"})
    assert created.status_code == 201, created.get_json()
    assert pings  # the idle connection was asked first, found dead and replaced
    assert [job["type"] for job in client.get("/api/jobs").get_json()["jobs"]] == ["after", "before"]


@pytest.mark.parametrize("idle_s", [0.0, ALIVE_BYPASS_S + 0.1])
def test_only_a_connection_idle_past_the_window_is_pinged(app, idle_s):
    client = app.test_client()
    assert client.post("/api/jobs", json={"type": "first"}).status_code == 201
    time.sleep(idle_s)
    with pings_sent() as pings:
        assert client.post("/api/jobs", json={"type": "second"}).status_code == 201
    assert len(pings) == (1 if idle_s else 0)
