"""What a statement selects jobs by, written into its text instead of bound: a job's status
(and an attempt's outcome) where the claim and the statements beside it read the jobs by
status, and a claimer's types and queues (`names_in_the_text`).

psycopg prepares a statement from its fifth run, and PostgreSQL then plans it for its
parameters' values five times before it may keep one generic plan for any values. A generic
plan knows neither which status a bound one is nor how rare it is:
- it cannot use an index whose predicate a parameter decides. The claim's indexes
  (`ix_jobs_claim`, `ix_jobs_queue_claim`) and the monitor's (`ix_jobs_queued_ready`) hold
  only the queued jobs (`QUEUED_ONLY`). With the status bound, a limited claim's generic plan
  read and sorted every queued job of its queue and read all of them again to find the queues
  holding any: 5.8 ms a claim at 6,000 queued, 1.8 ms with the status in the text;
- it takes the live jobs of a queue (claimed, running: a few) for as many as any status has,
  and counted them by reading every job of the queue, one time per live status.
tests/test_generic_plans.py runs the claims under generic plans.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, any_, bindparam, literal_column
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import String

from ..domain.outcomes import Outcome
from ..domain.statuses import LIVE, Status
from .extensions import db

QUEUED_ONLY = f"status = '{Status.QUEUED}'"  # the predicate of the indexes of queued jobs
QUEUED_LEASED = f"{QUEUED_ONLY} AND lease_expires_at IS NOT NULL"  # ix_jobs_queued_leases: with an earlier lease
# ix_jobs_cancelled_held: cancelled jobs a worker still holds (a lease its stop has not released).
CANCELLED_HELD = f"status = '{Status.CANCELLED}' AND lease_token IS NOT NULL"
# A live job (claimed, running), for statements written as text (the log's append).
LIVE_ONLY = "status IN (" + ", ".join(f"'{status}'" for status in sorted(LIVE)) + ")"
# ix_job_attempts_orphaned: the attempts a monitor or a server orphaned (a few), by their end.
ORPHANED_ATTEMPTS = f"outcome = '{Outcome.ORPHANED}'"


def status_is(column: ColumnElement[str] | InstrumentedAttribute[str], status: Status) -> ColumnElement[bool]:
    """`column` (a job's status, of any alias of the table) is `status`, written into the text."""
    return column == literal_column(f"'{status}'", String)


def outcome_is(column: InstrumentedAttribute[str | None], outcome: Outcome) -> ColumnElement[bool]:
    """`column` (an attempt's outcome) is `outcome`, written into the text as `status_is` writes a
    status, so that a generic plan may read the index whose predicate names it."""
    return column == literal_column(f"'{outcome}'", String)


def status_among(
    column: ColumnElement[str] | InstrumentedAttribute[str], statuses: Iterable[str]
) -> ColumnElement[bool]:
    """`column` (a job's status) is one of `statuses`, written into the text; on PostgreSQL as
    `= ANY (ARRAY[…])`, so that a read ordered by the status first (`in_status_order`) can only
    be an index range that the status leads.

    As an equality, PostgreSQL drops the status from such an ordering and may walk the id order
    instead, filtering, in the hope that the status's jobs come early. When they are not the
    newest that reads every job in between: 165 ms for a page of 51 jobs of a status behind
    99,000 newer jobs of other statuses, in a store of 1,000,000 (tests/test_backlog_reads.py)."""
    names = [str(Status(status)) for status in statuses]
    quoted = ", ".join(f"'{name}'" for name in names)
    if db.engine.dialect.name == "postgresql":
        return column == any_(literal_column(f"ARRAY[{quoted}]"))
    return column.in_([literal_column(f"'{name}'", String) for name in names])


def names_in_the_text(key: str) -> BindParameter[Any]:
    """An IN list of names (a claimer's job types or queues) bound as `key`, whose values
    SQLAlchemy writes into the statement's text at each execution instead of sending them as
    parameters.

    A generic plan does not know which types or queues a claimer takes, nor how many of the
    queued jobs are theirs. It read the claim order and filtered, which for a worker of a type
    or queue with nothing queued meant every queued job of the others: 200-470 ms a claim behind
    a backlog of 900,000 (tests/test_generic_plans.py). With the names in the text PostgreSQL
    plans for them: that claim reads an index range of its own and finds none. A worker claims
    with the same types and queues every time, so its statement is still prepared once."""
    return bindparam(key, expanding=True, literal_execute=True)
