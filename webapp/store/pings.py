"""Which pooled PostgreSQL connections are pinged before use: those idle for a while.

SQLAlchemy's `pool_pre_ping` sends `SELECT 1` before every checkout, that is before every
transaction: a round trip in front of the create request's sign-in check, of the claim, of
the audit entry — three of a pickup's round trips, all on connections that had answered a
few milliseconds before. As HikariCP does (its `aliveBypassWindowMs`, 500 ms by default), a
connection checked in less than ALIVE_BYPASS_S ago is used without asking; one idle for
longer (a database restart, a proxy's or firewall's idle timeout: what the ping is for) is
pinged, and a dead one is replaced before the request sees it (the pool retries the checkout
with a new connection when the ping fails).

What the window gives up: a connection the server killed less than ALIVE_BYPASS_S after its
last use (an operator's `pg_terminate_backend`, a fail-over faster than that) fails its first
statement; the request answers 503 with nothing written (workers retry it; a create's caller
sees the error once and may send it again), and SQLAlchemy then replaces every connection of
the pool.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

ALIVE_BYPASS_S = 0.5
_LAST_ALIVE = "jobwarden_last_alive"  # in each connection's `info`: when it last answered (monotonic)


def ping_idle_connections(engine: Engine) -> None:
    """Ping a connection at checkout only when it has been idle for ALIVE_BYPASS_S or longer
    (instead of `pool_pre_ping`'s every time)."""
    dialect = engine.dialect

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last_alive = record.info.get(_LAST_ALIVE)
        if last_alive is not None and time.monotonic() - last_alive < ALIVE_BYPASS_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            # The pool invalidates this connection and checks out a new one (or fails to connect).
            raise exc.DisconnectionError(f"a pooled connection was dead: {error}") from error
        record.info[_LAST_ALIVE] = time.monotonic()

    event.listen(engine.pool, "connect", _alive_now)
    event.listen(engine.pool, "checkin", _alive_now)
    event.listen(engine.pool, "checkout", ping_if_idle)


def _alive_now(_dbapi_connection: Any, record: Any) -> None:
    # A connection just opened, or given back after its transaction ended (the pool's reset on
    # return was its last answer): alive now.
    if record is not None:
        record.info[_LAST_ALIVE] = time.monotonic()
