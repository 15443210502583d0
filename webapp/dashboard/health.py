"""What the health page adds to the monitor's report: the jobs each worker is running now."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from ..extensions import db
from ..models import Job
from ..states import LIVE

CURRENT_JOBS_LIMIT = 500  # live jobs looked at; beyond that the page says "busy" without listing them all


def current_jobs_by_worker() -> dict[str, list[Job]]:
    """Claimed and running jobs, per worker id, oldest claim first."""
    rows = db.session.scalars(
        select(Job).where(Job.status.in_(LIVE), Job.worker_id.is_not(None)).order_by(Job.id).limit(CURRENT_JOBS_LIMIT)
    )
    found: dict[str, list[Job]] = defaultdict(list)
    for job in rows:
        found[job.worker_id].append(job)
    return dict(found)
