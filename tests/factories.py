"""Small factories: a job in any status, reached through the real commands."""

from __future__ import annotations

import itertools
from typing import Any

from webapp import jobs
from webapp.store.models import Job

_serial = itertools.count(1)


def make_job(status: str = "queued", **spec: Any) -> Job:
    """Create a job and drive it to `status` through the state machine.

    Jobs driven past queued get a type of their own unless one is given, so the
    claim that moves them takes exactly them.
    """
    if status not in ("pending", "queued") and "type" not in spec:
        spec["type"] = f"factory-{next(_serial)}"
    spec.setdefault("type", "demo.noop")
    job = jobs.create_job(hold=(status == "pending"), **spec)
    if status in ("pending", "queued"):
        return job
    if status == "cancelled":
        return jobs.cancel_job(job.id, reason="factory")
    if status == "failed":
        return jobs.mark_failed(job.id, reason="factory")
    (claimed,) = jobs.claim_jobs("factory-worker", types=[job.type])
    assert claimed.id == job.id, "another queued job of this type was claimed"
    if status == "claimed":
        return claimed
    running = jobs.start_job(job.id, claimed.lease_token)
    if status == "running":
        return running
    if status == "completed":
        return jobs.complete_job(job.id, claimed.lease_token, result={"ok": True})
    raise ValueError(f"unknown status {status}")


def events_of(job_id: int) -> list[tuple[str | None, str | None, str | None]]:
    return [(e.action, e.from_status, e.to_status) for e in jobs.events_of(job_id)]
