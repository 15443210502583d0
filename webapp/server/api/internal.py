"""The internal API workers speak: claim, start, heartbeat, steps, log, complete, fail,
and `stopped` (a cancelled job has stopped), one by one or several in one request
(`reports`, each item applied as its single report, the batch committed once).

Every route needs `Authorization: Bearer $JOBWARDEN_INTERNAL_API_KEY`; every
call after the claim carries the claim's lease token, and a token that is no
longer current is a 409 `lease_lost` that changes nothing (see webapp.store.transitions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from ... import jobs
from ...domain import statuses
from ...domain.limits import DEFERRED, REPORT_BATCH_BUDGET_S, REPORT_BATCH_SHARE_S
from ...jobs import cancellation, logs, steps
from ...jobs.serialize import claimed_job_json
from ...store import leases, transitions
from ...store.logs import LogPiece
from ...store.transaction import take_the_write_lock
from ...store.write_turns import batch_turn, others_waiting, turns_needed
from .. import auth, presence
from ..claim_wait import UnexpectedBytes, claim_waiting
from . import worker_schemas
from .spec import ApiError, invalid, operation, refused

bp = Blueprint("internal", __name__, url_prefix="/api/internal")
# A worker's bodies carry its jobs' results (only the body limit bounds their size): uncounted,
# so a large result is never refused and lost. Only holders of the internal key reach them:
# the key is checked before a body is read.
worker_operation = partial(operation, max_json_values=None)
KEY: list[dict[str, list[str]]] = [{"internalKey": []}]
ERRORS = (401, 404, 409)


@bp.before_request
def require_the_internal_key():
    if not auth.internal_key_valid():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <JOBWARDEN_INTERNAL_API_KEY>")


@worker_operation(
    bp,
    "POST",
    "/jobs/claim",
    summary="Claim up to batch_size queued jobs, waiting up to wait_s for one",
    body=worker_schemas.Claim,
    responses={200: worker_schemas.ClaimedJobs},
    errors=(401,),
    security=KEY,
)
def claim(body: worker_schemas.Claim):
    """Atomic: no job is ever handed to two workers. Each job comes with a fresh lease token.

    With nothing ready and `wait_s` > 0 the answer waits until a job becomes claimable
    (created, re-queued, force-started or its `run_after` comes) or `wait_s` passes.
    """
    if body.types == [] or body.queues == []:
        return {"jobs": []}  # none asked for: nothing to claim (transitions.claim reads "no filter" as any)
    try:
        claimed = claim_waiting(
            body.worker_id,
            types=body.types,
            queues=body.queues,
            batch_size=body.batch_size,
            wait_s=body.wait_s,
            start=body.start,
        )
    except UnexpectedBytes as error:
        raise ApiError(400, "invalid", f"wait_s: {error}", field="wait_s") from None
    replay = steps.replay_state(claimed)
    return {
        "jobs": [
            {**claimed_job_json(job), "lease_s": leases.lease_seconds(job.type), **replay[job.id]} for job in claimed
        ]
    }


@worker_operation(
    bp,
    "POST",
    "/jobs/<job_id:job_id>/start",
    summary="claimed → running",
    body=worker_schemas.Start,
    responses={200: worker_schemas.Accepted},
    errors=ERRORS,
    security=KEY,
)
def start(job_id: int, body: worker_schemas.Start):
    jobs.start_job(job_id, body.lease_token, argv=body.argv)
    return {"ok": True}


@worker_operation(
    bp,
    "POST",
    "/jobs/<job_id:job_id>/heartbeat",
    summary="Keep the lease; report progress",
    body=worker_schemas.Heartbeat,
    responses={200: worker_schemas.HeartbeatAnswer},
    errors=ERRORS,
    security=KEY,
)
def heartbeat(job_id: int, body: worker_schemas.Heartbeat):
    """Fields left out keep their values: a heartbeat naming no step keeps `current_step`."""
    job = jobs.heartbeat(
        job_id,
        body.lease_token,
        progress=body.progress,
        stage=body.stage,
        current_step=body.current_step,
        output=body.output,
        checkpoint=body.checkpoint.model_dump() if body.checkpoint else None,
        argv=body.argv,
    )
    return {"cancel_requested": bool(job.cancel_requested), "status": job.status}


@worker_operation(
    bp,
    "POST",
    "/jobs/<job_id:job_id>/steps",
    summary="A step started, completed (with its result), failed, is retrying or was replayed",
    body=worker_schemas.Step,
    responses={200: worker_schemas.Accepted},
    errors=ERRORS,
    security=KEY,
)
def step(job_id: int, body: worker_schemas.Step):
    """A `completed` event that carries `result` stores it in the same transaction."""
    stored = body.result if body.event == "completed" and "result" in body.model_fields_set else steps.NO_RESULT
    jobs.record_step(
        job_id,
        body.lease_token,
        name=body.name,
        event=body.event,
        attempt=body.attempt,
        phase=body.phase,
        error=body.error,
        result=stored,
        result_attempt=body.result_attempt,
        step_attempt=body.step_attempt,
    )
    return {"ok": True}


@worker_operation(
    bp,
    "POST",
    "/jobs/<job_id:job_id>/complete",
    summary="running → completed",
    body=worker_schemas.Complete,
    responses={200: worker_schemas.Accepted},
    errors=ERRORS,
    security=KEY,
)
def complete(job_id: int, body: worker_schemas.Complete):
    jobs.complete_job(job_id, body.lease_token, result=body.result, exit_code=body.exit_code, output=body.output)
    return {"ok": True}


@worker_operation(
    bp,
    "POST",
    "/jobs/<job_id:job_id>/fail",
    summary="The attempt failed: retried with backoff or failed",
    body=worker_schemas.Fail,
    responses={200: worker_schemas.Accepted},
    errors=ERRORS,
    security=KEY,
)
def fail(job_id: int, body: worker_schemas.Fail):
    jobs.fail_job(
        job_id,
        body.lease_token,
        error=body.error,
        exit_code=body.exit_code,
        output=body.output,
        retryable=body.retryable,
        interrupted=body.interrupted,
        retry_in_s=body.retry_in_s,
    )
    return {"ok": True}


@worker_operation(
    bp,
    "POST",
    "/jobs/<job_id:job_id>/stopped",
    summary="The worker stopped a job it was told to stop (cancelled, or its lease lost)",
    body=worker_schemas.Stopped,
    responses={200: worker_schemas.Accepted},
    errors=ERRORS,
    security=KEY,
)
def stopped(job_id: int, body: worker_schemas.Stopped):
    """Releases the cancelled job's lease and notes who stopped it; without it the monitor
    notes, after the job's timeout, that the worker never confirmed the cancellation.
    With `attempt`, an ended attempt's lease is released whatever the job did since (failed,
    queued again): the job need not wait for the lease to run out (webapp.store.leases)."""
    with jobs.unit_of_work():
        released = body.attempt is not None and leases.release(job_id, body.attempt)
        try:
            cancellation.confirm_stopped(job_id, body.lease_token, output=body.output)
        except (statuses.TransitionRefused, statuses.JobNotFound):
            if not released:
                raise
    return {"ok": True}


@operation(
    bp,
    "POST",
    "/jobs/<job_id:job_id>/log",
    summary="A piece of the attempt's log, at its byte offset",
    body=worker_schemas.Log,
    responses={200: worker_schemas.LogStored},
    errors=(401, 404),
    security=KEY,
)
def log(job_id: int, body: worker_schemas.Log):
    """Stored once per offset, and only while the lease token is the job's: a worker that
    lost the job stores nothing (its next heartbeat says so). An unknown job is a 404."""
    with jobs.unit_of_work():
        stored = logs.append([LogPiece(job_id, body.lease_token, body.offset, body.text)])
        if not stored:
            try:
                jobs.get_job(job_id)
            except statuses.JobNotFound as error:
                raise ApiError(404, "not_found", str(error)) from None
    return {"stored": bool(stored)}


SINGLE: dict[str, Callable[[int, Any], dict[str, Any]]] = {
    "start": start,
    "heartbeat": heartbeat,
    "step": step,
    "complete": complete,
    "fail": fail,
    "stopped": stopped,
}


@worker_operation(
    bp,
    "POST",
    "/reports",
    summary="Several reports (start, heartbeat, step, complete, fail, stopped) in one request",
    body=worker_schemas.Reports,
    responses={200: worker_schemas.ReportResults},
    errors=(401,),
    security=KEY,
)
def reports(body: worker_schemas.Reports):
    """A worker's reports for all its jobs at once. Each item is applied as its single
    report would be, fenced by its own lease token, and gets its own answer, in order,
    with the `code` the single report would have answered: an invalid item (400 naming
    `items[i].field`), an unknown job (404) or a stale lease (409 `lease_lost` with the
    job's status) never keeps the others from applying.

    One transaction for the batch (a refused item refuses before it writes, so it leaves
    nothing behind): the batch waits for one commit. If that commit fails nothing was
    applied, and the whole request answers 503, which the worker sends again. So a batch
    is capped (`limits.MAX_REPORTS_PER_BATCH` items, a 400 beyond): on SQLite every other
    writer waits for its transaction, which must not last seconds.

    Consecutive starts (or completes) of different jobs are applied together, one
    statement for them all on PostgreSQL (`transitions.transition_held`); every other item,
    and anything after them, keeps its place in the order. The batch's log pieces are stored
    first, all in one statement, each fenced by its lease token as it stood before the batch
    (a worker sends an attempt's last lines before its final report).

    On SQLite the batch's work is capped in time too: once `limits.REPORT_BATCH_BUDGET_S` has passed
    (`limits.REPORT_BATCH_SHARE_S` once another writer queues behind it), the items not yet
    applied answer 503 `deferred` (nothing of them written), and the worker sends them again in
    its next batch — so no batch holds SQLite's write lock for seconds. Batches queue among
    themselves before they queue with every other writer (`store.write_turns`, first come first
    served), so another writer waits behind one batch's share, not one per worker."""
    try:
        with batch_turn(), jobs.unit_of_work():
            take_the_write_lock()  # the budget counts the batch's own work, not its wait for the lock
            results = _apply_all(body.items, _time_is_up if turns_needed() else _never)
    except SQLAlchemyError as error:
        raise ApiError(503, "unavailable", "the reports were not stored; send them again") from error
    return {"results": results}


def _start_all(items: list[Any]) -> list[transitions.Outcome]:
    return jobs.start_jobs([jobs.StartReport(item.job_id, item.lease_token, item.argv) for item in items])


def _complete_all(items: list[Any]) -> list[transitions.Outcome]:
    return jobs.complete_jobs(
        [jobs.CompleteReport(item.job_id, item.lease_token, item.result, item.exit_code, item.output) for item in items]
    )


DEFERRED_ANSWER = {"code": 503, "error": DEFERRED, "message": "not applied: the batch's time was up; send it again"}
TOGETHER: dict[str, Callable[[list[Any]], list[transitions.Outcome]]] = {"start": _start_all, "complete": _complete_all}


def _store_logs(items: list[Any]) -> dict[int, dict[str, Any]]:
    """The batch's log pieces, in one statement; each one's answer by its index."""
    pieces = {
        index: item
        for index, item in enumerate(items)
        if not isinstance(item, worker_schemas.BadItem) and item.kind == "log"
    }
    stored = {
        (piece.job_id, piece.start)
        for piece in logs.append(
            [LogPiece(item.job_id, item.lease_token, item.offset, item.text) for item in pieces.values()]
        )
    }
    return {index: {"code": 200, "stored": (item.job_id, item.offset) in stored} for index, item in pieces.items()}


def _apply_all(items: list[Any], time_is_up: Callable[[float], bool]) -> list[dict[str, Any]]:
    results: dict[int, dict[str, Any]] = _store_logs(items)
    run: dict[int, Any] = {}  # index → item: consecutive items of one TOGETHER kind
    run_jobs: set[int] = set()  # each for another job

    def apply_run() -> None:
        if run:
            outcomes = TOGETHER[next(iter(run.values())).kind](list(run.values()))
            for index, outcome in zip(run, outcomes, strict=True):
                results[index] = _answer(outcome)
            run.clear()
            run_jobs.clear()

    began = time.monotonic()
    for index, item in enumerate(items):
        if index in results:
            continue  # a log piece, stored already
        if index and time_is_up(time.monotonic() - began):
            apply_run()
            results.update((later, dict(DEFERRED_ANSWER)) for later in range(index, len(items)) if later not in results)
            break
        together = not isinstance(item, worker_schemas.BadItem) and item.kind in TOGETHER
        if run and not (together and item.kind == next(iter(run.values())).kind and item.job_id not in run_jobs):
            apply_run()
        if together:
            run[index] = item
            run_jobs.add(item.job_id)
        else:
            results[index] = _apply(index, item)
    apply_run()
    return [results[index] for index in range(len(items))]


def _time_is_up(worked_s: float) -> bool:
    """On SQLite: past the batch's budget, or past its share of it while another writer waits for its turn."""
    return worked_s > REPORT_BATCH_BUDGET_S or (worked_s > REPORT_BATCH_SHARE_S and others_waiting())


def _never(_worked_s: float) -> bool:
    """On PostgreSQL, which locks rows, not the store: a batch is never cut short."""
    return False


def _answer(outcome: transitions.Outcome) -> dict[str, Any]:
    if isinstance(outcome, Exception):
        problem = refused(outcome)
        return {"code": problem.code, "error": problem.error, "message": problem.message, **problem.extra}
    return {"code": 200, "ok": True}


def _apply(index: int, item: Any) -> dict[str, Any]:
    if isinstance(item, worker_schemas.BadItem):
        problem = invalid(item.error, ("items", index), tagged=True)
    else:
        try:
            return {"code": 200, **SINGLE[item.kind](item.job_id, item)}
        except (statuses.TransitionRefused, statuses.JobNotFound) as error:
            problem = refused(error)
        except ApiError as error:
            problem = error
    return {"code": problem.code, "error": problem.error, "message": problem.message, **problem.extra}


@worker_operation(
    bp,
    "POST",
    "/workers/heartbeat",
    summary="Register or refresh a worker; tells it whether it is taken for gone",
    body=worker_schemas.WorkerHeartbeat,
    responses={200: worker_schemas.WorkerHeartbeatAnswer},
    errors=(401,),
    security=KEY,
)
def worker_heartbeat(body: worker_schemas.WorkerHeartbeat):
    gone = jobs.register_worker(
        body.worker_id, hostname=body.hostname, pid=body.pid, types=body.types, concurrency=body.concurrency
    )
    return {"ok": True, "gone": gone}


@worker_operation(
    bp,
    "POST",
    "/workers/presence",
    summary="Held open by each worker: its connection dropping without a goodbye is its death",
    body=worker_schemas.WorkerPresence,
    responses={200: worker_schemas.Accepted},
    errors=(401,),
    security=KEY,
)
def worker_presence(body: worker_schemas.WorkerPresence):
    """Answered after `wait_s`; the worker sends it again at once. If the connection drops
    first and the worker never said goodbye, its live jobs are orphaned at once (they run
    elsewhere once their lease runs out: see webapp.server.presence)."""
    presence.hold(body.worker_id, body.wait_s)
    return {"ok": True}


@worker_operation(
    bp,
    "POST",
    "/workers/goodbye",
    summary="The worker stops cleanly: the end of its presence is not a death",
    body=worker_schemas.WorkerGoodbye,
    responses={200: worker_schemas.Accepted},
    errors=(401,),
    security=KEY,
)
def worker_goodbye(body: worker_schemas.WorkerGoodbye):
    presence.say_goodbye(body.worker_id)
    return {"ok": True}
