"""The public JSON API: create, list, inspect and recover jobs, health and cleanup."""

from __future__ import annotations

from flask import Blueprint, Response

from ... import jobs, monitor
from ...domain.actions import ACTIONS, Action
from ...domain.actors import API
from ...jobs import logs, steps
from ...jobs.actions import apply_action, bulk_audit, run_action
from ...jobs.serialize import attempt_json, event_json, job_json, step_json
from ...jobs.waiting import waiting_reasons, with_waiting
from .. import auth
from ..audit_trail import entry_with_change, note
from . import answers, bodies
from .spec import ApiError, invalid_query, operation

bp = Blueprint("api", __name__, url_prefix="/api")
# Who may call a write: a token, HTTP Basic, or nobody on an install where nobody signs in.
OPERATOR: list[dict[str, list[str]]] = [{}, {"token": []}, {"operator": []}]
WRITE_ERRORS = (401, 403)


def without_personal_data(job: dict) -> dict:
    """A job as a viewer may see it when JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS is on: no payload,
    result, output or checkpoint data (they may hold personal data); as it is otherwise."""
    if auth.may_see_payloads():
        return job
    hidden = {**job, "payload": None, "result": None}
    if "attempts" in hidden:
        hidden["attempts"] = [{**attempt, "output_tail": None, "argv": None} for attempt in hidden["attempts"]]
    if hidden.get("checkpoint"):
        hidden["checkpoint"] = {**hidden["checkpoint"], "data": None}
    return hidden


def _filter(query: bodies.JobQuery) -> jobs.JobFilter:
    return jobs.JobFilter(
        statuses=[str(v) for v in query.status],
        type=query.type,
        worker=query.worker,
        q=query.q,
        schedule=query.schedule,
        queue=query.queue,
    )


@operation(
    bp,
    "POST",
    "/jobs",
    summary="Create a job",
    body=bodies.CreateJob,
    responses={
        201: ("Created", answers.JobOut),
        200: ("A live job already holds the unique_key: that job, with duplicate: true", answers.DuplicateJob),
    },
    errors=WRITE_ERRORS,
    security=OPERATOR,
)
def create_job(body: bodies.CreateJob):
    """Queued at once, or pending with `hold`."""
    with jobs.as_committed():
        created = jobs.create_job_once(actor=auth.acting_as(API), audit_entry=entry_with_change(), **body.model_dump())
        if created.duplicate:
            return {**job_json(created.job), "duplicate": True}, 200
        return job_json(created.job), 201


@operation(
    bp,
    "POST",
    "/jobs/bulk",
    summary="Create up to 1,000 jobs, all or nothing",
    body=bodies.BulkCreate,
    responses={201: ("Created", answers.CreatedIds)},
    errors=WRITE_ERRORS,
    security=OPERATOR,
)
def create_jobs(body: bodies.BulkCreate):
    """One transaction: a bad entry (named by index and field) creates nothing."""
    created = jobs.create_jobs([spec.model_dump() for spec in body.jobs], actor=auth.acting_as(API))
    return {"ids": [job.id for job in created]}, 201


@operation(bp, "GET", "/jobs", summary="List jobs", query=bodies.ListQuery, responses={200: answers.JobList})
def list_jobs(query: bodies.ListQuery):
    """Keyset pages: pass `next_cursor` back as `cursor` (with the same filters and sort)."""
    with invalid_query():
        rows, next_cursor = jobs.list_jobs(
            _filter(query),
            sort=query.sort,
            order=query.order,
            limit=query.limit,
            cursor=query.cursor,
        )
    waiting = waiting_reasons(rows)
    listed = [without_personal_data(with_waiting(job_json(job), waiting[job.id])) for job in rows]
    return {"jobs": listed, "next_cursor": next_cursor}


@operation(
    bp,
    "GET",
    "/jobs/<job_id:job_id>",
    summary="One job with its attempts and steps",
    responses={200: answers.JobDetail},
    errors=(404,),
)
def get_job(job_id: int):
    job = jobs.get_job(job_id)
    return without_personal_data(
        {
            **with_waiting(job_json(job), waiting_reasons([job])[job.id]),
            "queue_position": jobs.queue_position(job),
            "queue_position_cap": jobs.QUEUE_POSITION_CAP,
            "attempts": [attempt_json(attempt) for attempt in jobs.attempts_of(job_id)],
            "steps": [step_json(step) for step in jobs.steps_of(job_id)],
            "checkpoint": steps.checkpoint_json(steps.checkpoint_of(job_id)),
        }
    )


@operation(
    bp,
    "GET",
    "/jobs/<job_id:job_id>/events",
    summary="The job's events, oldest first",
    responses={200: answers.EventList},
    errors=(404,),
)
def job_events(job_id: int):
    jobs.get_job(job_id)
    return {"events": [event_json(event) for event in jobs.events_of(job_id)]}


@operation(
    bp,
    "GET",
    "/jobs/<job_id:job_id>/log",
    summary="An attempt's log from a byte offset (follow it with next_offset)",
    query=bodies.LogQuery,
    responses={200: answers.AttemptLog},
    also_as=("text/plain",),
    errors=(400, 403, 404),
)
def job_log(job_id: int, query: bodies.LogQuery):
    """Default: the newest attempt from byte 0. `?format=text` answers the text as text/plain.
    Hidden from viewers, like payloads, with JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS."""
    if not auth.may_see_payloads():
        raise ApiError(403, "forbidden", "logs are hidden from viewers (JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS)")
    try:
        if query.format == "text":
            found = logs.attempt_log(job_id, attempt=query.attempt, offset=query.offset)
            return Response(found.slice.text, mimetype="text/plain")
        return Response(
            logs.log_answer(job_id, attempt=query.attempt, offset=query.offset), mimetype="application/json"
        )
    except logs.AttemptNotFound as error:
        raise ApiError(404, "not_found", str(error)) from None


def _recovery(action: Action) -> None:
    def view(job_id: int, body: bodies.ReasonBody):
        with jobs.as_committed():
            job = run_action(action, job_id, actor=auth.acting_as(API), reason=body.reason)
            return job_json(job)

    view.__name__ = action.python_name
    view.__doc__ = action.description
    operation(
        bp,
        "POST",
        f"/jobs/<job_id:job_id>/{action.name}",
        summary=action.summary,
        body=bodies.ReasonBody,
        body_required=False,
        responses={200: answers.JobOut},
        errors=(*WRITE_ERRORS, 404, 409),
        security=OPERATOR,
    )(view)


for _action in ACTIONS:
    _recovery(_action)


@operation(
    bp,
    "POST",
    "/jobs/actions",
    summary="One action on up to 1,000 jobs",
    body=bodies.BulkAction,
    responses={200: answers.ActionResult},
    errors=WRITE_ERRORS,
    security=OPERATOR,
)
def bulk_action(body: bodies.BulkAction):
    """Each job is its own compare-and-set; jobs that moved on are listed in `skipped` with why."""
    if body.ids is not None:
        ids = body.ids
    else:
        assert body.filter is not None  # BulkAction requires ids or filter
        with invalid_query():
            ids = jobs.ids_matching(_filter(body.filter))
    result = apply_action(body.action, ids, actor=auth.acting_as(API), reason=body.reason)
    note(target=f"{len(ids)} jobs", data=bulk_audit(ids, result))
    return result


@operation(bp, "GET", "/health", summary="What is stuck, the workers, and the monitor", responses={200: answers.Health})
def health():
    return monitor.health_report()


@operation(
    bp,
    "POST",
    "/admin/cleanup",
    summary="Run one health-monitor pass now",
    responses={200: answers.CleanupResult},
    errors=WRITE_ERRORS,
    security=OPERATOR,
)
def cleanup():
    """Returns what the pass changed (ids per kind), or `skipped` when another replica's pass holds the lock."""
    return monitor.run_pass(trigger="api")
