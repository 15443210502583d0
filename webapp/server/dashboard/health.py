"""What the health page adds to the monitor's report: the jobs each worker is running now."""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from sqlalchemy import select

from ...domain.statuses import LIVE
from ...store.extensions import db
from ...store.models import Job

CURRENT_JOBS_LIMIT = 500  # live jobs looked at; beyond that the page says "busy" without listing them all


class CurrentJob(NamedTuple):
    id: int
    type: str


def current_jobs_by_worker() -> dict[str, list[CurrentJob]]:
    """Claimed and running jobs (id and type), per worker id, oldest first."""
    rows = db.session.execute(
        select(Job.worker_id, Job.id, Job.type)
        .where(Job.status.in_(sorted(LIVE)), Job.worker_id.is_not(None))
        .order_by(Job.id)
        .limit(CURRENT_JOBS_LIMIT)
    )
    found: dict[str, list[CurrentJob]] = defaultdict(list)
    for worker_id, job_id, job_type in rows:
        found[str(worker_id)].append(CurrentJob(job_id, job_type))
    return dict(found)
