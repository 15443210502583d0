"""`/api/schedules`: add, list, change, remove, pause, resume and trigger schedules.

Viewers read; changes need an admin (webapp.server.access). The worker's
declared schedules arrive on the internal API's key (`/internal/schedules/sync`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from ...domain.actors import API, WORKER
from ...jobs import schedules as store
from ...jobs.serialize import JobOut, job_json
from ...store.transaction import as_committed
from .. import auth
from . import schedule_schemas as s
from .public import OPERATOR
from .spec import ApiError, operation

bp = Blueprint("schedules_api", __name__, url_prefix="/api")
ERRORS = (401, 403, 404)
RUNS_IN_LIST = 1


@bp.errorhandler(store.ScheduleNotFound)
def not_found(error: store.ScheduleNotFound):
    return ApiError(404, "not_found", str(error))


@bp.errorhandler(store.BadSchedule)
def bad_schedule(error: store.BadSchedule):
    return ApiError(400, "invalid", f"{error.field}: {error}", field=error.field)


@bp.errorhandler(store.ScheduleExists)
def exists(error: store.ScheduleExists):
    return ApiError(409, "conflict", str(error))


def one_json(name: str) -> dict[str, Any]:
    schedule = store.get(name)
    return store.schedule_json(schedule, store.last_runs([name], RUNS_IN_LIST)[name])


def given(body: s.ScheduleSettings) -> dict[str, Any]:
    return {field: getattr(body, field) for field in body.model_fields_set if field in store.SETTINGS}


@operation(
    bp,
    "POST",
    "/schedules",
    summary="Add a schedule",
    body=s.CreateSchedule,
    responses={201: ("Created", s.ScheduleOut)},
    errors=(401, 403, 409),
    security=OPERATOR,
)
def create_schedule(body: s.CreateSchedule):
    """`cron` (in `timezone`) or `every_s`, not both. Its jobs carry `schedule` and `scheduled_for`."""
    store.create(body.name, given(body), source="api", actor=auth.acting_as(API))
    return one_json(body.name), 201


@operation(bp, "GET", "/schedules", summary="List schedules", responses={200: s.ScheduleList})
def list_schedules():
    schedules = store.all_schedules()
    runs = store.last_runs([schedule.name for schedule in schedules], RUNS_IN_LIST)
    return {"schedules": [store.schedule_json(schedule, runs[schedule.name]) for schedule in schedules]}


@operation(bp, "GET", "/schedules/<name>", summary="One schedule", responses={200: s.ScheduleOut}, errors=(404,))
def get_schedule(name: str):
    return one_json(name)


@operation(
    bp,
    "PATCH",
    "/schedules/<name>",
    summary="Change a schedule",
    body=s.ScheduleSettings,
    responses={200: s.ScheduleOut},
    errors=ERRORS,
    security=OPERATOR,
)
def change_schedule(name: str, body: s.ScheduleSettings):
    """A new `cron`, `every_s` or `timezone` fires from now on; times in between are not made up."""
    store.change(name, given(body), actor=auth.acting_as(API))
    return one_json(name)


@operation(
    bp,
    "DELETE",
    "/schedules/<name>",
    summary="Remove a schedule",
    responses={204: ("Removed; its jobs stay", None)},
    errors=ERRORS,
    security=OPERATOR,
)
def delete_schedule(name: str):
    store.remove(name)
    return "", 204


@operation(
    bp,
    "POST",
    "/schedules/<name>/pause",
    summary="Pause a schedule",
    responses={200: s.ScheduleOut},
    errors=ERRORS,
    security=OPERATOR,
)
def pause_schedule(name: str):
    return _set_paused(name, True)


@operation(
    bp,
    "POST",
    "/schedules/<name>/resume",
    summary="Resume a schedule",
    responses={200: s.ScheduleOut},
    errors=ERRORS,
    security=OPERATOR,
)
def resume_schedule(name: str):
    """It fires next at its first time after now: times it was paused over are not made up."""
    return _set_paused(name, False)


def _set_paused(name: str, paused: bool):
    store.set_paused(name, paused, actor=auth.acting_as(API))
    return one_json(name)


@operation(
    bp,
    "POST",
    "/schedules/<name>/trigger",
    summary="Run a schedule once now",
    responses={201: ("The job made", JobOut)},
    errors=ERRORS,
    security=OPERATOR,
)
def trigger_schedule(name: str):
    with as_committed():
        job = store.trigger(name, actor=auth.acting_as(API))
        return job_json(job), 201


# --- the worker's declared schedules (internal API key) --------------------------------

internal_bp = Blueprint("schedules_internal", __name__, url_prefix="/api/internal")


@internal_bp.before_request
def require_the_internal_key():
    if not auth.internal_key_valid():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <JOBWARDEN_INTERNAL_API_KEY>")


internal_bp.register_error_handler(store.BadSchedule, bad_schedule)


@operation(
    internal_bp,
    "POST",
    "/schedules/sync",
    summary="Sync the schedules a worker's code declares",
    body=s.DeclaredSchedules,
    responses={200: s.SyncResult},
    errors=(401,),
    security=[{"internalKey": []}],
)
def sync_schedules(body: s.DeclaredSchedules):
    """New ones are added, changed ones changed; code schedules left out are marked `missing_from_code`,
    never deleted. A name taken by a schedule made through the API is left alone (`conflicts`)."""
    declared = [{"name": spec.name, **given(spec)} for spec in body.schedules]
    for spec in body.schedules:  # all checked before any is stored: a bad one changes nothing
        store.check_settings({**store.DEFAULTS, **given(spec)})
    return store.sync_declared(declared, actor=WORKER)
