"""No dashboard page reads the whole store on SQLite either.

tests/test_dashboard_plans.py holds PostgreSQL's plans; SQLite's planner chooses too, and chose
wrong: /queues' jobs finished in the last hour were read through an index of (queue, status),
every finished job of each queue, to save the grouping's sort; /health's stopping note walked
the table by its primary key; a rare type's counts per status walked each status's jobs. Here
the same store of 100,000 jobs is built on SQLite and analyzed, every GET route of the
dashboard is requested whole and as its HTMX region, and each statement's cost is counted in
SQLite's own unit, the VM instructions it ran (in thousands, tests/support/reads.py), which
grow with the rows it reads.

READ_BOUND: one walk of the 100,000 jobs runs some 300 thousand instructions here, a capped
count (COUNT_CAP + 1 index entries) about 90, and the heaviest read of a page, /stats' failures
by error over the newest 10,000 failures of its window, 200. A count of a rare type's jobs per
status walked every job of each status (265) until it was read along the type's own range."""

from __future__ import annotations

import pytest

from webapp.store.extensions import db

from tests.conftest import sqlite_only
from tests.support.dashboard_store import dashboard_requests, load_store, store_config
from tests.support.reads import sqlite_steps

pytestmark = [sqlite_only, pytest.mark.slow]

READ_BOUND = 250


@pytest.fixture
def app_config(database_url) -> dict:
    return store_config(database_url)


def test_no_dashboard_statement_reads_the_store_on_sqlite(app):
    client = app.test_client()
    webhook_id = load_store(client)
    heaviest: dict[str, tuple[int, str]] = {}
    requests = 0
    for url, headers in dashboard_requests(app, webhook_id):
        with sqlite_steps() as steps:
            answer = client.get(url, headers=headers)
        requests += 1
        assert answer.status_code in (200, 302), f"{url} {headers}: {answer.status_code}"
        for statement, thousands in steps.items():
            if thousands > READ_BOUND and thousands > heaviest.get(statement, (0, ""))[0]:
                heaviest[statement] = (thousands, url)
    db.session.rollback()
    assert requests > 40
    offenders = [
        f"{url}: {n:,} thousand instructions\n  {' '.join(sql.split())[:300]}" for sql, (n, url) in heaviest.items()
    ]
    assert not offenders, "\n\n".join(offenders)
