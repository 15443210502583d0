"""What a serving process keeps grows only so far, however many different requests it serves."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from webapp.server.app import COMPILED_STATEMENTS_KEPT
from webapp.store.extensions import db

from tests.conftest import INTERNAL_KEY

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}

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


HEAP_MAX = 64 * 1024 * 1024  # glibc: a thread arena is a heap of this size, aligned on it


def malloc_arenas_beside_the_main_one(pid: int) -> int:
    """Thread arenas in /proc/PID/maps: each heap's unused tail is an anonymous PROT_NONE
    mapping ending on a 64 MiB boundary (a thread stack's guard is one page, below its stack)."""
    count = 0
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        addresses, perms, _offset, _device, inode, *path = line.split()
        start, end = (int(address, 16) for address in addresses.split("-"))
        if perms == "---p" and inode == "0" and not path and end % HEAP_MAX == 0 and end - start > 4096:
            count += 1
    return count


def test_the_threads_of_a_gunicorn_worker_allocate_from_two_malloc_arenas(app, server):
    """Claims waiting at once each hold a thread; glibc alone would give each thread an arena."""

    def waiting_claim(number: int) -> int:
        body = {"worker_id": f"waiting-{number}", "types": ["nothing.of.this.type"], "wait_s": 1.5}
        answer = requests.post(f"{server.url}/api/internal/jobs/claim", headers=KEY, json=body, timeout=30)
        return answer.status_code

    with ThreadPoolExecutor(max_workers=14) as pool:
        assert set(pool.map(waiting_claim, range(14))) == {200}
    assert server.process is not None
    workers = [
        int(pid)
        for task in Path(f"/proc/{server.process.pid}/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    assert len(workers) == 2
    # Either worker may have accepted most of the claims (or all: whichever wakes first takes
    # a connection), so the workers whose threads served claims at once are the ones checked.
    served = [pid for pid in workers if len(list(Path(f"/proc/{pid}/task").iterdir())) >= 4]
    assert served
    for pid in served:
        assert malloc_arenas_beside_the_main_one(pid) <= 1  # gunicorn_config's MALLOC_ARENAS = 2, the main one and one
