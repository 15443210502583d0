"""Values the filter form suggests: the job types the store knows."""

from __future__ import annotations

from ...jobs import distinct_values
from ...store.models import Job

TYPES_SUGGESTED = 200


def known_types() -> list[str]:
    """Distinct job types, alphabetically: a loose index scan of ix_jobs_type_id, one probe per type."""
    return distinct_values(Job.type, limit=TYPES_SUGGESTED)
