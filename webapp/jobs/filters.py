"""Which jobs a list, a count or a bulk action means, and the error for a bad parameter."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, or_

from ..store.models import Job
from ..store.status_sql import status_among
from .query_params import BadQuery, is_job_id

__all__ = ["BadQuery", "JobFilter"]


@dataclass
class JobFilter:
    statuses: list[str] = field(default_factory=list)
    type: str | None = None
    worker: str | None = None
    queue: str | None = None
    q: str | None = None
    schedule: str | None = None

    def narrows_by_index(self) -> bool:
        """Whether an equality on an indexed column (type, worker, schedule, queue) narrows the
        jobs, and no text search: its jobs are then one range of that column's index."""
        return bool(self.type or self.worker or self.schedule or self.queue) and not self.q

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.statuses:
            conditions.append(status_among(Job.status, self.statuses))
        if self.type:
            conditions.append(Job.type == self.type)
        if self.worker:
            conditions.append(Job.worker_id == self.worker)
        if self.schedule:
            conditions.append(Job.schedule == self.schedule)
        if self.queue:
            conditions.append(Job.queue == self.queue)
        if self.q:
            text = self.q.strip()
            matches = [
                Job.type.contains(text, autoescape=True),
                Job.last_error.contains(text, autoescape=True),
            ]
            if is_job_id(text):
                matches.append(Job.id == int(text))
            conditions.append(or_(*matches))
        return conditions
