"""Every scan of a monitor pass reads what it finds, not the jobs kept.

A pass runs every few seconds, on every store, to notice dead workers and stuck jobs: each of
its scans must cost the few jobs it is after, however many finished jobs the store keeps. The
unconfirmed cancellations' scan did not: PostgreSQL's planner read every cancelled job kept,
through the status's index, to find the few a worker still held (20,000 of them at 1,000,000
jobs, 7 ms a pass; ix_jobs_cancelled_held since). Here 300,000 jobs, 20,000 of them cancelled
and settled (from 300,000 the planner takes that read), analyzed as `populate` leaves them;
each scan is run alone and the index entries and rows of `jobs` it read beyond the rows it
found are counted (tests/support/reads.py)."""

from __future__ import annotations

import pytest

from benchmarks.monitor import populate
from webapp import monitor
from webapp.store.extensions import db

from tests.conftest import postgresql_only
from tests.support.dashboard_store import store_config
from tests.support.reads import jobs_entries_read

pytestmark = [postgresql_only, pytest.mark.slow]

READ_BOUND = 100  # a scan that finds nothing reads a few index pages' entries, not thousands


@pytest.fixture
def app_config(database_url) -> dict:
    return store_config(database_url)


def test_no_scan_of_a_pass_reads_the_jobs_kept(app):
    populate(300_000, 50, queued=1_000, pending=500, failed=5_000, cancelled=20_000)
    db.session.commit()
    reads = {}
    for name, scan in monitor.scans().items():
        before = jobs_entries_read()
        found = db.session.execute(scan).all()
        reads[name] = jobs_entries_read() - before - len(found)
        db.session.rollback()
    assert all(read <= READ_BOUND for read in reads.values()), reads
