"""The `/schedules` dashboard page: each schedule's "when" in words, its next three fire times
(in its zone and UTC), its last runs as badges, pause/resume, trigger now (the in-page
confirmation), edit and remove for schedules made here or through the API, and the add form.
Everyone may look; operators act. A schedule declared in code is changed in code."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_wtf.csrf import CSRFError
from pydantic import ValidationError

from ...domain.actors import OPERATOR
from ...domain.schedule_policies import MISFIRE_POLICIES, OVERLAP_POLICIES
from ...domain.schedule_timing import zone
from ...jobs import schedules as store
from .. import auth
from ..api import schedule_schemas as s
from ..api.spec import invalid
from .regions import render_region, wants_region
from .views import csrf_refused, dashboard_context

UPCOMING_SHOWN = 3
RUNS_SHOWN = 8
_TICK = timedelta(microseconds=1)
FORM_FIELDS = ("name", "type", "cron", "every_s", "timezone", "payload", "misfire", "overlap")

bp = Blueprint("schedules", __name__)
bp.context_processor(dashboard_context)
bp.register_error_handler(CSRFError, csrf_refused)


def trigger_question(name: str, job_type: str) -> str:
    return f"Run schedule {name} now? One {job_type} job is created at once, outside its timetable."


def _rows() -> list[dict[str, Any]]:
    schedules = store.all_schedules()
    runs = store.last_runs([schedule.name for schedule in schedules], RUNS_SHOWN)
    rows = []
    for schedule in schedules:
        timing = store.timing_of(schedule)
        local = zone(schedule.timezone)
        upcoming = [] if schedule.paused else timing.upcoming(schedule.next_fire_at - _TICK, UPCOMING_SHOWN)
        rows.append(
            {
                "schedule": schedule,
                "words": timing.in_words(),
                "upcoming": [(moment.astimezone(local), moment) for moment in upcoming],
                "runs": runs[schedule.name],
                "editable": schedule.source == "api",
                "trigger_question": trigger_question(schedule.name, schedule.type),
            }
        )
    return rows


def _page(status: int = 200, **shown: Any):
    context = {
        "rows": _rows(),
        "misfire_policies": MISFIRE_POLICIES,
        "overlap_policies": OVERLAP_POLICIES,
        "form": {},
        **shown,
    }
    return render_region("schedules/index.html", "schedules/_region.html", **context), status


def _done(message: str):
    if wants_region():
        return _page(message=message)
    flash(message, "ok")
    return redirect(url_for("schedules.index"))


def _form_settings(model: type[s.ScheduleSettings]) -> tuple[dict[str, Any], Any]:
    """The form as the API's body: blanks left out, numbers and JSON parsed (a bad one named)."""
    values: dict[str, Any] = {}
    for field in FORM_FIELDS:
        raw = (request.form.get(field) or "").strip()
        if raw:
            values[field] = raw
    if "payload" in values:
        try:
            values["payload"] = json.loads(values["payload"])
        except ValueError:
            return values, "payload: not valid JSON"
    if model is s.ScheduleSettings:
        values.pop("name", None)
    try:
        return values, model.model_validate(values, strict=False)  # form fields are text
    except ValidationError as error:
        return values, invalid(error).message


@bp.get("/schedules")
def index():
    return _page()


@bp.post("/schedules")
def create():
    form, body = _form_settings(s.CreateSchedule)
    if isinstance(body, str):
        return _page(400, error=body, form=form)
    try:
        store.create(body.name, {k: getattr(body, k) for k in body.model_fields_set if k in store.SETTINGS},
                     source="api", actor=auth.acting_as(OPERATOR))  # fmt: skip
    except store.BadSchedule as error:
        return _page(400, error=f"{error.field}: {error}", form=form)
    except store.ScheduleExists as error:
        return _page(409, error=str(error), form=form)
    return _done(f"Schedule {body.name} added.")


@bp.post("/schedules/<name>/edit")
def edit(name: str):
    form, body = _form_settings(s.ScheduleSettings)
    if isinstance(body, str):
        return _page(400, error=body)
    changes = {k: getattr(body, k) for k in body.model_fields_set if k in store.SETTINGS}
    # The form holds cron or every_s: the one left blank is cleared.
    changes.setdefault("cron" if "every_s" in changes else "every_s", None)
    try:
        if store.get(name).source != "api":
            return _page(409, error=f"schedule {name} is declared in code: change it there")
        store.change(name, changes, actor=auth.acting_as(OPERATOR))
    except store.BadSchedule as error:
        return _page(400, error=f"{error.field}: {error}")
    except store.ScheduleNotFound as error:
        return _page(404, error=str(error))
    return _done(f"Schedule {name} changed.")


def _act(name: str, action: str):
    try:
        if action == "trigger":
            job = store.trigger(name, actor=auth.acting_as(OPERATOR))
            return _done(f"Schedule {name} triggered: job {job.id}.")
        if action == "delete":
            store.remove(name)
            return _done(f"Schedule {name} removed; its jobs stay.")
        store.set_paused(name, action == "pause", actor=auth.acting_as(OPERATOR))
    except store.ScheduleNotFound as error:
        return _page(404, error=str(error))
    return _done(f"Schedule {name} {'paused' if action == 'pause' else 'resumed'}.")


@bp.post("/schedules/<name>/<any(pause, resume, trigger, delete):action>")
def act(name: str, action: str):
    return _act(name, action)
