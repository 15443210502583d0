"""Values the filter form suggests: the job types the store knows."""

from __future__ import annotations

from sqlalchemy import select

from ...store.extensions import db
from ...store.models import Job

TYPES_SUGGESTED = 200


def known_types() -> list[str]:
    """Distinct job types, alphabetically (an index-only scan of ix_jobs_type_id)."""
    return list(db.session.scalars(select(Job.type).distinct().order_by(Job.type).limit(TYPES_SUGGESTED)))
