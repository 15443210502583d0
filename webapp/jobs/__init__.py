"""Queries and commands on jobs: what the API, the dashboard, the worker API and
the monitor call. Status changes go through `webapp.store.transitions`; each command here
is one transaction, committed on success and rolled back on refusal.

One module per reason to change: `queries`, `filters` and `cursors` read;
`lifecycle` is the worker's side of a job; `recovery` and `actions` the
operator's; `reaping` the health monitor's writes and `rollups` its hourly
rollups of finished jobs (and the /stats reads over them); `workers` the worker
registry; `policy` the retry and heartbeat policy. Callers use this package's
names (`jobs.create_job(...)`).
"""

from __future__ import annotations

from ..domain.limits import OUTPUT_TAIL_BYTES
from ..store.transaction import as_committed, unit_of_work
from .cursors import decode_cursor, encode_cursor
from .filters import BadQuery, JobFilter
from .lifecycle import (
    CompleteReport,
    Created,
    StartReport,
    claim_jobs,
    complete_job,
    complete_jobs,
    create_job,
    create_job_once,
    create_jobs,
    fail_job,
    heartbeat,
    record_step,
    start_job,
    start_jobs,
)
from .output import tail
from .policy import end_attempt, heartbeat_timeout, retry_delay
from .queries import (
    BULK_LIMIT,
    FAILURES_GROUPED,
    QUEUE_POSITION_CAP,
    SORT_COLUMNS,
    ErrorGroups,
    attempts_of,
    count_by_status,
    count_matching,
    distinct_values,
    events_of,
    failures_by_error,
    get_job,
    ids_matching,
    list_jobs,
    live_finished_by_type,
    live_finished_per_bucket,
    queue_position,
    steps_of,
    uncovered_queued_types,
)
from .reaping import (
    fail_stale_pending,
    mark_worker_gone,
    orphan_job,
    orphan_unstarted_job,
    prune_finished,
    release_stale_pending,
    release_unconfirmed_cancellation,
)
from .recovery import cancel_job, force_start, mark_failed, restart_job, resume_job, run_now
from .rollups import finished_by_type, finished_per_bucket, roll_up, rolled_up_to
from .series import sample_queue_depth
from .workers import register_worker, unserved_types

__all__ = [
    "BULK_LIMIT",
    "OUTPUT_TAIL_BYTES",
    "SORT_COLUMNS",
    "BadQuery",
    "CompleteReport",
    "JobFilter",
    "StartReport",
    "as_committed",
    "attempts_of",
    "cancel_job",
    "claim_jobs",
    "complete_job",
    "complete_jobs",
    "count_by_status",
    "count_matching",
    "Created",
    "create_job",
    "create_job_once",
    "create_jobs",
    "decode_cursor",
    "encode_cursor",
    "end_attempt",
    "events_of",
    "fail_job",
    "fail_stale_pending",
    "failures_by_error",
    "ErrorGroups",
    "FAILURES_GROUPED",
    "finished_by_type",
    "finished_per_bucket",
    "force_start",
    "get_job",
    "heartbeat",
    "heartbeat_timeout",
    "distinct_values",
    "ids_matching",
    "list_jobs",
    "live_finished_by_type",
    "live_finished_per_bucket",
    "mark_failed",
    "mark_worker_gone",
    "orphan_job",
    "orphan_unstarted_job",
    "prune_finished",
    "QUEUE_POSITION_CAP",
    "queue_position",
    "record_step",
    "register_worker",
    "restart_job",
    "run_now",
    "resume_job",
    "release_stale_pending",
    "release_unconfirmed_cancellation",
    "retry_delay",
    "roll_up",
    "sample_queue_depth",
    "rolled_up_to",
    "start_job",
    "start_jobs",
    "steps_of",
    "tail",
    "uncovered_queued_types",
    "unserved_types",
    "unit_of_work",
]
