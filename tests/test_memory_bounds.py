"""What a serving process keeps grows only so far, however many different requests it serves."""

from __future__ import annotations

import itertools

from webapp.server.app import COMPILED_STATEMENTS_KEPT
from webapp.store.extensions import db

STATUSES = ["", "status=failed", "status=queued&status=running", "status=completed&status=failed&status=cancelled"]
NARROWING = ["", "type=demo.sleep", "worker=w1", "q=abc", "queue=default", "schedule=nightly"]
SORTS = ["", "sort=id", "sort=priority", "sort=created_at", "sort=updated_at", "sort=type", "sort=status"]
ORDERS = ["", "order=asc"]


def test_the_compiled_statements_kept_stay_bounded_after_hundreds_of_different_lists(app, client):
    """Each combination of the list's filters, sort and order is a statement of its own
    (290 statements for these 336 lists); SQLAlchemy's default cache would keep up to 750."""
    lists = [
        "&".join(part for part in parts if part) for parts in itertools.product(STATUSES, NARROWING, SORTS, ORDERS)
    ]
    assert len(lists) > COMPILED_STATEMENTS_KEPT * 1.5
    for query in lists:
        assert client.get(f"/api/jobs?{query}").status_code == 200, query
    # The engine's LRU of compiled statements prunes back to its size once it holds half as many again.
    kept = len(db.engine._compiled_cache)
    assert COMPILED_STATEMENTS_KEPT <= kept <= COMPILED_STATEMENTS_KEPT * 1.5
    assert client.get("/jobs", headers={"HX-Request": "true"}).status_code == 200
