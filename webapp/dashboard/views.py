"""Dashboard routes: parse the request, call webapp.jobs, render a page or (for HTMX) its region."""
from __future__ import annotations

import hmac

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   session, url_for)
from flask_wtf.csrf import CSRFError

from .. import jobs, monitor, states, steps
from ..extensions import htmx, limiter
from ..timeutil import utcnow
from . import display
from .stats import last_hour

bp = Blueprint("dashboard", __name__)
bp.add_app_template_filter(display.duration, "duration")
bp.add_app_template_filter(display.age, "age")
bp.add_app_template_filter(display.when, "when")
bp.add_app_template_filter(display.capped, "capped")

PAGE_SIZE = 50
COUNT_CAP = 10_000
POLL_DELAY = "2s"
# Recovery actions: URL name → (state-machine edge, domain command, button label).
ACTIONS = {
    "force-start": ("force_start", jobs.force_start, "Force start"),
    "mark-failed": ("fail", jobs.mark_failed, "Mark as failed"),
    "cancel": ("cancel", jobs.cancel_job, "Cancel"),
    "resume": ("resume", jobs.resume_job, "Resume"),
    "restart": ("restart", jobs.restart_job, "Restart from scratch"),
}
DURABLE_ACTIONS = ("resume", "restart")  # offered only to jobs with recorded steps or a checkpoint


def can_act() -> bool:
    """Actions are shown and accepted unless read-only, or a password is set and not given."""
    if current_app.config["JOBWARDEN_READ_ONLY"]:
        return False
    return not current_app.config["JOBWARDEN_ADMIN_PASSWORD"] or session.get("operator") is True


@bp.context_processor
def dashboard_context() -> dict:
    return {"now": utcnow(), "can_act": can_act(), "statuses": list(states.Status),
            "poll_delay": POLL_DELAY, "login_enabled": bool(current_app.config["JOBWARDEN_ADMIN_PASSWORD"])}


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
    if htmx and not htmx.boosted:
        return render_template("jobs/_table.html", rows=rows, next_cursor=next_cursor, job_filter=job_filter, view=view)
    matching = jobs.count_matching(job_filter, cap=jobs.BULK_LIMIT) if can_act() else 0
    return render_template("jobs/index.html", rows=rows, next_cursor=next_cursor, job_filter=job_filter, view=view,
                           matching=matching, bulk_limit=jobs.BULK_LIMIT)


@bp.post("/jobs/bulk")
def bulk_action():
    """One action on the selected jobs, or on all the filter matches (at most 1,000); says what changed and what not."""
    if not can_act():
        abort(403)
    action = request.form.get("action")
    if action not in ACTIONS:
        return render_template("error.html", message=f"action: choose one of {', '.join(ACTIONS)}"), 400
    filter_args = {key: request.form.getlist(key) if key == "status" else request.form.get(key)
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
    flash(display.bulk_summary(ACTIONS[action][2], result), "ok" if not result["skipped"] else "refused")
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
    return render_template("jobs/_counts.html", counts=counts, cap=COUNT_CAP)


def _job_context(job_id: int) -> dict:
    job = jobs.get_job(job_id)
    attempts = jobs.attempts_of(job_id)
    job_steps = jobs.steps_of(job_id)
    checkpoint = steps.checkpoint_of(job_id)
    return {
        "job": job,
        "attempts": attempts,
        "failed_attempt": next((a for a in reversed(attempts) if a.error), None),
        "latest_attempt": attempts[-1] if attempts else None,
        "events": jobs.events_of(job_id),
        "steps": job_steps,
        "checkpoint": checkpoint,
        "queue_position": jobs.queue_position(job),
        "timeout": jobs.timeout_for(job),
        "actions": _actions_for(job.status, _resume_label(job_id, job_steps, checkpoint, attempts)),
    }


def _resume_label(job_id: int, job_steps: list[dict], checkpoint, attempts) -> str | None:
    """"Resume from step NAME", naming the first step not completed; None when the job has
    no recorded steps nor a checkpoint (then Force start is the same thing)."""
    if not job_steps and checkpoint is None:
        return None
    name = (steps.first_step_to_run(job_steps, steps.stored_names(job_id))
            or (checkpoint.step if checkpoint else None) or (attempts[-1].step if attempts else None))
    return f"Resume from step {name}" if name else "Resume from the last checkpoint"


def _actions_for(status: str, resume_label: str | None = None) -> list[tuple[str, str]]:
    allowed = set(states.edges_from(status))
    offered = [(name, label) for name, (edge, _, label) in ACTIONS.items()
               if edge in allowed and (resume_label or name not in DURABLE_ACTIONS)]
    return [(name, resume_label if name == "resume" and resume_label else label) for name, label in offered]


@bp.get("/jobs/<job_id:job_id>")
def job_page(job_id: int):
    template = "jobs/_detail.html" if htmx and not htmx.boosted else "jobs/show.html"
    return render_template(template, **_job_context(job_id))


@bp.post("/jobs/<job_id:job_id>/<action>")
def job_action(job_id: int, action: str):
    """Run one recovery action; answer the re-rendered card (HTMX) or go back to the job page."""
    if action not in ACTIONS:
        abort(404)
    if not can_act():
        abort(403)
    _, command, label = ACTIONS[action]
    reason = (request.form.get("reason") or "").strip()[:2000] or None
    try:
        command(job_id, actor="operator", reason=reason)
        message, ok = f"{label}: done.", True
    except states.TransitionRefused as refused:
        message, ok = f"Already {refused.status} — nothing was done.", False
    if htmx:
        return render_template("jobs/_card.html", message=message, ok=ok, **_job_context(job_id))
    flash(message, "ok" if ok else "refused")
    return redirect(url_for("dashboard.job_page", job_id=job_id))


def _login_rate_limit() -> str:
    return current_app.config["JOBWARDEN_LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"], error_message="Too many login attempts; wait a minute.")
def login():
    """Operator login, only when JOBWARDEN_ADMIN_PASSWORD is set."""
    password = current_app.config["JOBWARDEN_ADMIN_PASSWORD"]
    if not password:
        return redirect(url_for("dashboard.job_list"))
    error = None
    if request.method == "POST":
        given = request.form.get("password", "")
        if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), password.encode()):
            session.clear()  # a fresh session on login: nothing planted before it carries over
            session["operator"] = True
            return redirect(url_for("dashboard.job_list"))
        error = "Wrong password."
    return render_template("login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    session.pop("operator", None)
    return redirect(url_for("dashboard.job_list"))


@bp.get("/health")
def health():
    """What is stuck, the workers, alerts for queued types nobody takes, and the monitor's passes."""
    report = monitor.health_report()
    live = [w for w in report["workers"] if w["state"] == "alive" and w["heartbeat"] != "expired"]
    if any(not w["types"] for w in live):
        unserved = []
    else:
        unserved = jobs.uncovered_queued_types({t for w in live for t in w["types"]})
    template = "health/_report.html" if htmx and not htmx.boosted else "health/index.html"
    return render_template(template, report=report, unserved=unserved, cap=report["counts_cap"])


@bp.get("/stats")
def stats():
    """Throughput and failures over the last hour, as a server-rendered SVG chart and tables."""
    return render_template("stats.html", stats=last_hour(utcnow()))
