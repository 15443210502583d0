"""Dashboard routes: parse the request, call webapp.jobs, render a page or (for HTMX) its region."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from .. import auth, jobs, monitor, states
from ..actions import ACTION_NAMES, ACTIONS, action_named, actions_from
from ..extensions import htmx, limiter
from ..limits import COUNT_CAP
from ..timeutil import utcnow
from . import display
from .choices import known_types
from .health import current_jobs_by_worker
from .regions import render_region, wants_region
from .stats import DEFAULT_WINDOW, WINDOWS, over

bp = Blueprint("dashboard", __name__)
bp.add_app_template_filter(display.duration, "duration")
bp.add_app_template_filter(display.age, "age")
bp.add_app_template_filter(display.when, "when")
bp.add_app_template_filter(display.capped, "capped")
bp.add_app_template_filter(display.timetag, "timetag")
bp.add_app_template_filter(display.agotag, "agotag")
bp.add_app_template_filter(display.isotag, "isotag")
bp.add_app_template_filter(display.intag, "intag")
bp.add_app_template_filter(display.error_headline, "error_headline")
bp.add_app_template_filter(display.pretty_json, "pretty_json")
bp.add_app_template_global(display.run_seconds, "run_seconds")
bp.add_app_template_global(display.PAYLOAD_CAP, "PAYLOAD_CAP")  # type: ignore[arg-type]  # any value may be a global
# One definition of each status set and of the operator actions, for the templates too.
for _name, _value in {"Status": states.Status, "LIVE": states.LIVE, "UNFINISHED": states.UNFINISHED,
                      "FINISHED": states.FINISHED, "ACTIONS": ACTIONS}.items():
    bp.add_app_template_global(_value, _name)  # type: ignore[arg-type]  # any value may be a global

PAGE_SIZE = 50
POLL_DELAY = "2s"


@bp.context_processor
def dashboard_context() -> dict:
    return {"now": utcnow(), "can_act": auth.can_act(), "statuses": list(states.Status),
            "poll_delay": POLL_DELAY, "login_enabled": auth.password_required()}


@bp.errorhandler(CSRFError)
def csrf_refused(error: CSRFError):
    return render_template("error.html", message=f"Refused: {error.description}"), 400


@bp.errorhandler(states.JobNotFound)
def job_not_found(error: states.JobNotFound):
    return render_template("error.html", message=str(error)), 404


@bp.get("/")
def index():
    return redirect(url_for("dashboard.job_list"))


def _filter_from_args() -> tuple[jobs.JobFilter, dict]:
    return _filter_from(request.args)


def _filter_from(args) -> tuple[jobs.JobFilter, dict]:
    """The table's filter and view from query parameters (or the bulk form's hidden copies)."""
    statuses = [s for s in args.getlist("status") if s]
    unknown = [s for s in statuses if s not in set(states.Status)]
    if unknown:
        raise jobs.BadQuery("status", f"unknown status {unknown[0]!r}")
    job_filter = jobs.JobFilter(
        statuses=statuses,
        type=args.get("type") or None,
        worker=args.get("worker") or None,
        q=args.get("q") or None,
    )
    view = {"sort": args.get("sort") or "id", "order": args.get("order") or "desc",
            "cursor": args.get("cursor") or None}
    return job_filter, view


@bp.get("/jobs")
def job_list():
    """The table; an HTMX poll gets only the table region, with its next poll trigger."""
    try:
        job_filter, view = _filter_from_args()
        rows, next_cursor = jobs.list_jobs(job_filter, limit=PAGE_SIZE, **view)
    except jobs.BadQuery as error:
        return render_template("error.html", message=f"{error.field}: {error}"), 400
    matching = 0 if wants_region() or not auth.can_act() else jobs.count_matching(job_filter, cap=jobs.BULK_LIMIT)
    types = [] if wants_region() else known_types()
    return render_region("jobs/index.html", "jobs/_table.html", rows=rows, next_cursor=next_cursor,
                         job_filter=job_filter, view=view, matching=matching, bulk_limit=jobs.BULK_LIMIT,
                         known_types=types)


@bp.post("/jobs/bulk")
def bulk_action():
    """One action on the selected jobs, or on all the filter matches (at most 1,000); says what changed and what not."""
    if not auth.can_act():
        abort(403)
    action = request.form.get("action")
    if action not in ACTION_NAMES:
        return render_template("error.html", message=f"action: choose {', '.join(ACTION_NAMES)}"), 400
    filter_args: dict[str, Any] = {key: request.form.getlist(key) if key == "status" else request.form.get(key)
                   for key in ("status", "type", "worker", "q") if request.form.get(key)}
    try:
        if request.form.get("all_matching"):
            job_filter, _ = _filter_from(request.form)
            ids = jobs.ids_matching(job_filter)
        else:
            ids = _selected_ids()
    except jobs.BadQuery as error:
        flash(f"Nothing was done — {error}.", "refused")
        return redirect(url_for("dashboard.job_list", **filter_args))
    reason = (request.form.get("reason") or "").strip()[:2000] or None
    result = jobs.apply_action(action, ids, actor="operator", reason=reason)
    flash(display.bulk_summary(action_named(action).label, result), "ok" if not result["skipped"] else "refused")
    return redirect(url_for("dashboard.job_list", **filter_args))


def _selected_ids() -> list[int]:
    values = request.form.getlist("ids")
    if not values:
        raise jobs.BadQuery("ids", "no jobs were selected")
    if len(values) > jobs.BULK_LIMIT:
        raise jobs.BadQuery("ids", f"at most {jobs.BULK_LIMIT} jobs at once")
    if not all(value.isdigit() and 0 < int(value) < 2**63 for value in values):
        raise jobs.BadQuery("ids", "job ids are positive numbers")
    return [int(value) for value in values]


@bp.get("/jobs/counts")
def job_counts():
    """Counts per status for the filter bar, capped so a huge table stays cheap; loaded lazily."""
    try:
        job_filter, _ = _filter_from_args()
    except jobs.BadQuery as error:
        return render_template("error.html", message=f"{error.field}: {error}"), 400
    job_filter.statuses = []
    counts = jobs.count_by_status(job_filter, cap=COUNT_CAP)
    filter_args = {key: request.args[key] for key in ("type", "worker", "q") if request.args.get(key)}
    return render_template("jobs/_counts.html", counts=counts, cap=COUNT_CAP, filter_args=filter_args)


def _job_context(job_id: int) -> dict:
    job = jobs.get_job(job_id)
    attempts = jobs.attempts_of(job_id)
    return {
        "job": job,
        "attempts": attempts,
        "failed_attempt": next((a for a in reversed(attempts) if a.error), None),
        "latest_attempt": attempts[-1] if attempts else None,
        "events": jobs.events_of(job_id),
        "steps": jobs.steps_of(job_id),
        "queue_position": jobs.queue_position(job),
        "timeout": jobs.heartbeat_timeout(job),
        "actions": actions_from(job.status),
    }


@bp.get("/jobs/<job_id:job_id>")
def job_page(job_id: int):
    return render_region("jobs/show.html", "jobs/_detail.html", **_job_context(job_id))


@bp.post("/jobs/<job_id:job_id>/<action>")
def job_action(job_id: int, action: str):
    """Run one recovery action; answer the whole re-rendered job region (HTMX) or go back to the job page."""
    if action not in ACTION_NAMES:
        abort(404)
    if not auth.can_act():
        abort(403)
    chosen = action_named(action)
    reason = (request.form.get("reason") or "").strip()[:2000] or None
    try:
        chosen.command(job_id, actor="operator", reason=reason)
        message, ok = f"{chosen.label}: done.", True
    except states.TransitionRefused as refused:
        message, ok = f"Already {refused.status} — nothing was done.", False
    if htmx:
        return render_template("jobs/_detail.html", message=message, ok=ok, **_job_context(job_id))
    flash(message, "ok" if ok else "refused")
    return redirect(url_for("dashboard.job_page", job_id=job_id))


def _login_rate_limit() -> str:
    return current_app.config["JOBWARDEN_LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"], error_message="Too many login attempts; wait a minute.")
def login():
    """Operator login, only when JOBWARDEN_ADMIN_PASSWORD is set."""
    if not auth.password_required():
        return redirect(url_for("dashboard.job_list"))
    error = None
    if request.method == "POST":
        if auth.log_in(request.form.get("password", "")):
            return redirect(url_for("dashboard.job_list"))
        error = "Wrong password."
    return render_template("login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    auth.log_out()
    return redirect(url_for("dashboard.job_list"))


@bp.get("/health")
def health():
    """What is stuck, the workers, alerts for queued types nobody takes, and the monitor's passes."""
    report = monitor.health_report()
    return render_region("health/index.html", "health/_report.html", report=report, cap=report["counts_cap"],
                         current_jobs=current_jobs_by_worker())


@bp.get("/stats")
def stats():
    """Throughput and failures over 1 h, 24 h or 7 d, as a server-rendered SVG chart and tables."""
    key = request.args.get("window") or DEFAULT_WINDOW
    if key not in WINDOWS:
        return render_template("error.html", message=f"window: choose {', '.join(WINDOWS)}"), 400
    return render_template("stats.html", stats=over(utcnow(), WINDOWS[key]), windows=WINDOWS)
