"""When a waiting claim should look again: the moment the next queued job it may take, not
claimable when it looked, becomes claimable (webapp.server.claim_wait).

A queued job is claimable once its `run_after` has come and no earlier attempt's lease runs
(webapp.store.leases). As one condition on every queued job (`the later of the two > looked`)
the read took every queued job of the claimer's types, due ones too: a queue paused over a
backlog of 100,000 jobs made each waiting claim's look read all of them. So it is two reads
that each stop at their first row:
- the run_after side, queue by queue: each queue's first `run_after` after the look, an index
  range of `ix_jobs_queued_ready` (status, queue, run_after, type), found from the queues
  holding queued jobs (`flow.queued_queues`, one index probe per queue);
- the lease side: the queued jobs whose earlier attempt's lease outlasts their `run_after`,
  by `lease_expires_at` from the look on, from `ix_jobs_queued_leases`, which holds only the
  queued jobs that kept an earlier attempt's lease (requeued while that attempt was stopping,
  or after the monitor orphaned it); a queued job from a create or a retry has none.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select

from ..domain.statuses import Status
from .extensions import db
from .flow import queued_queues
from .models import Job
from .status_sql import names_in_the_text, status_is

_JOBS = Job.__table__


def next_claimable_at(types: list[str] | None, queues: list[str] | None, looked_at: datetime) -> datetime | None:
    """The earliest moment after `looked_at` at which a queued job of `types` in `queues`
    (None or empty: any) becomes claimable; None when no queued job will without a change. A
    moment already past means: claim again at once.

    Only jobs claimable after the claim looked: a job due before it that the claim did not take
    is held by its queue (paused, or a limit full), and waking for it at once made the wait a
    loop of claims (730 statements in 2 s for one claim, while an operator paused a queue);
    `flow.held_back_until` says when limited queues are worth a look again, and a resume or a
    freed slot wakes the claims. Not `now`: a job that came due while the claim ran (a retry's
    backoff ending) was left out as held, and waited out the whole wait (19.9 s, a loaded run)."""
    params: dict[str, Any] = {"looked_at": looked_at, "types": types or [], "queues": queues or []}
    return db.session.execute(_next_claimable(bool(types), bool(queues)), params).scalar()


@functools.lru_cache(maxsize=4)
def _next_claimable(by_type: bool, by_queue: bool) -> Select[Any]:
    looked_at = bindparam("looked_at", type_=_JOBS.c.run_after.type)
    claimer = [status_is(_JOBS.c.status, Status.QUEUED)]
    if by_type:
        claimer.append(_JOBS.c.type.in_(names_in_the_text("types")))
    found = queued_queues()
    # The lease, if any, ends by the job's run_after: claimable at its run_after.
    first_run_after = (
        select(_JOBS.c.run_after)
        .where(
            _JOBS.c.queue == found.c.queue,
            *claimer,
            _JOBS.c.run_after > looked_at,
            or_(_JOBS.c.lease_expires_at.is_(None), _JOBS.c.lease_expires_at <= _JOBS.c.run_after),
        )
        .order_by(_JOBS.c.run_after)
        .limit(1)
        .scalar_subquery()
    )
    by_run_after = select(func.min(first_run_after).label("at")).where(found.c.queue.is_not(None))
    if by_queue:
        by_run_after = by_run_after.where(found.c.queue.in_(names_in_the_text("queues")))
    # The lease outlasts the run_after: claimable when the lease ends.
    by_lease = select(func.min(_JOBS.c.lease_expires_at).label("at")).where(
        *claimer,
        _JOBS.c.lease_expires_at.is_not(None),
        and_(_JOBS.c.lease_expires_at > looked_at, _JOBS.c.lease_expires_at > _JOBS.c.run_after),
    )
    if by_queue:
        by_lease = by_lease.where(_JOBS.c.queue.in_(names_in_the_text("queues")))
    moments = by_run_after.union_all(by_lease).subquery("moments")
    return select(func.min(moments.c.at))
