"""The longest string each stored API field may be, read from the columns it lands in.

A field checked at the edge against a number of its own drifts from its column: a
claim's 194-character worker id passed the schema and then overflowed the event's
varchar(200) `actor` ("worker:" + id) on PostgreSQL, a 500 instead of a 400. Here
each limit is the shortest of its columns' lengths, less what the store writes in
front of the value, so a schema that uses these cannot accept what a column cannot
hold. tests/test_column_limits.py walks every input schema and the models to keep
every string field so.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import InstrumentedAttribute

from ..domain.actors import WORKER_PREFIX
from .models import Checkpoint, Job, JobAttempt, JobEvent, JobRollup, StepResult, Worker


def column_length(column: InstrumentedAttribute) -> int:
    """The declared length of a string column (a column without one is a model error)."""
    column_type = column.property.columns[0].type
    if not isinstance(column_type, String) or column_type.length is None:
        raise TypeError(f"{column} has no declared length")
    return column_type.length


WORKER_ID_MAX = min(
    column_length(Job.worker_id),
    column_length(JobAttempt.worker_id),
    column_length(Worker.id),
    column_length(JobEvent.actor) - len(WORKER_PREFIX),
)
JOB_TYPE_MAX = min(column_length(Job.type), column_length(JobRollup.type))
# A step's name becomes the job's current step, the attempt's step, a stored result's and a checkpoint's step.
STEP_NAME_MAX = min(
    column_length(Job.current_step),
    column_length(JobAttempt.step),
    column_length(StepResult.name),
    column_length(Checkpoint.step),
)
STAGE_MAX = column_length(Job.stage)
HOSTNAME_MAX = column_length(Worker.hostname)
