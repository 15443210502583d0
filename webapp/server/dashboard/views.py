"""Dashboard routes: parse the request, call webapp.jobs, render a page or (for HTMX) its region."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from ... import jobs, monitor
from ...domain.actions import ACTION_NAMES, ACTIONS, action_named, actions_from
from ...domain.actors import OPERATOR
from ...domain.alerts import format_seconds
from ...domain.limits import COUNT_CAP, MAX_REASON_CHARS
from ...domain.statuses import FINISHED, LIVE, UNFINISHED, JobNotFound, Status, TransitionRefused
from ...domain.timeutil import utcnow
from ...domain.worker_states import WORKER_STATE_LABELS
from ...jobs import logs, query_params, steps
from ...jobs.actions import apply_action, bulk_audit, run_action
from ...jobs.waiting import waiting_reasons
from ...store.leases import stopping_json
from .. import auth, oidc
from ..audit_trail import note
from ..extensions import htmx, limiter
from . import display, log_view, recovery_effects
from .choices import known_types
from .health import current_jobs_by_worker
from .regions import render_region, wants_region
from .stats import DEFAULT_WINDOW, WINDOWS, over
from .trends import trends

bp = Blueprint("dashboard", __name__)
bp.add_app_template_filter(display.duration, "duration")
bp.add_app_template_filter(display.age, "age")
bp.add_app_template_filter(display.when, "when")
bp.add_app_template_filter(display.capped, "capped")
bp.add_app_template_filter(display.plain_number, "plain_number")
bp.add_app_template_filter(display.timetag, "timetag")
bp.add_app_template_filter(display.agotag, "agotag")
bp.add_app_template_filter(display.isotag, "isotag")
bp.add_app_template_filter(display.intag, "intag")
bp.add_app_template_filter(display.error_headline, "error_headline")
bp.add_app_template_filter(display.wrappable, "wrappable")
bp.add_app_template_filter(format_seconds, "period")  # a window: "15 min", "1 h"
bp.add_app_template_filter(display.pretty_json, "pretty_json")
bp.add_app_template_global(display.run_seconds, "run_seconds")
bp.add_app_template_global(display.badge, "badge")
bp.add_app_template_global(display.progress, "progress")
bp.add_app_template_global(display.waiting_tag, "waiting_tag")
bp.add_app_template_global(stopping_json, "stopping_json")
bp.add_app_template_global(display.PAYLOAD_CAP, "PAYLOAD_CAP")  # type: ignore[arg-type]  # any value may be a global
# One definition of each status set and of the operator actions, for the templates too.
for _name, _value in {
    "Status": Status,
    "LIVE": LIVE,
    "UNFINISHED": UNFINISHED,
    "FINISHED": FINISHED,
    "ACTIONS": ACTIONS,
    "WORKER_STATE_LABELS": WORKER_STATE_LABELS,
    "WAITING_TEXT": display.WAITING_TEXT,  # the jobs table's waiting tag says it in full on hover
}.items():
    bp.add_app_template_global(_value, _name)  # type: ignore[arg-type]  # any value may be a global

PAGE_SIZE = 50
POLL_DELAY = "2s"


LOGS_HIDDEN = "Logs are hidden from viewers here (JOBWARDEN_HIDE_PAYLOADS_FROM_VIEWERS)."


@bp.context_processor
def dashboard_context() -> dict:
    return {
        "now": utcnow(),
        "can_act": auth.can_act(),
        "can_admin": auth.can_admin(),
        "principal": auth.current_principal(),
        "see_payloads": auth.may_see_payloads(),
        "statuses": list(Status),
        "poll_delay": POLL_DELAY,
        "login_enabled": auth.current_principal().via != auth.OPEN,  # decided once: an open install has no sign-in
        "oidc_enabled": oidc.enabled(),
    }


@bp.errorhandler(CSRFError)
def csrf_refused(error: CSRFError):
    return render_template("error.html", message=f"Refused: {error.description}"), 400


@bp.errorhandler(JobNotFound)
def job_not_found(error: JobNotFound):
    return render_template("error.html", message=str(error)), 404


@bp.get("/")
def index():
    return redirect(url_for("dashboard.job_list"))


def _filter_from_args() -> tuple[jobs.JobFilter, dict]:
    return _filter_from(request.args)


def _filter_from(args) -> tuple[jobs.JobFilter, dict]:
    """The table's filter and view from query parameters (or the bulk form's hidden copies)."""
    statuses = query_params.unique_values("status", args.getlist("status"))
    unknown = [s for s in statuses if s not in set(Status)]
    if unknown:
        raise query_params.MalformedParameter("status", f"unknown status {unknown[0]!r}")
    job_filter = jobs.JobFilter(
        statuses=statuses,
        type=query_params.text("type", args.get("type")),
        worker=query_params.text("worker", args.get("worker")),
        queue=query_params.text("queue", args.get("queue")),
        q=query_params.text("q", args.get("q")),
        schedule=query_params.text("schedule", args.get("schedule")),
    )
    view = {
        "sort": args.get("sort") or "id",
        "order": args.get("order") or "desc",
        "cursor": query_params.text("cursor", args.get("cursor"), query_params.MAX_CURSOR),
    }
    return job_filter, view


def _link_args(job_filter: jobs.JobFilter, view: dict) -> dict:
    """The table's own parameters, for its links: never what else the query string held
    (url_for reads `_external`, `_scheme`, `_anchor`, `_method` as instructions)."""
    args = {
        "status": job_filter.statuses,
        "type": job_filter.type,
        "worker": job_filter.worker,
        "queue": job_filter.queue,
        "q": job_filter.q,
        "schedule": job_filter.schedule,
        **view,
    }
    return {name: value for name, value in args.items() if value}


def _refused(error: jobs.BadQuery):
    return render_template("error.html", message=f"{error.field}: {error}"), 400


def _reason_from_form() -> str | None:
    reason = (request.form.get("reason") or "").strip()
    return query_params.text("reason", reason, max_length=MAX_REASON_CHARS)


@bp.get("/jobs")
def job_list():
    """The table; an HTMX poll gets only the table region, with its next poll trigger."""
    try:
        job_filter, view = _filter_from_args()
        rows, next_cursor = jobs.list_jobs(job_filter, limit=PAGE_SIZE, **view)
    except jobs.BadQuery as error:
        return _refused(error)
    link_args = _link_args(job_filter, view)
    matching = 0 if wants_region() or not auth.can_act() else jobs.count_matching(job_filter, cap=jobs.BULK_LIMIT)
    types = [] if wants_region() else known_types()
    return render_region(
        "jobs/index.html",
        "jobs/_table.html",
        rows=rows,
        waiting=waiting_reasons(rows),
        next_cursor=next_cursor,
        job_filter=job_filter,
        view=view,
        link_args=link_args,
        matching=matching,
        bulk_limit=jobs.BULK_LIMIT,
        known_types=types,
    )


@bp.post("/jobs/bulk")
def bulk_action():
    """One action on the selected jobs, or on all the filter matches (at most 1,000); says what changed and what not."""
    action = request.form.get("action")
    if action not in ACTION_NAMES:
        return render_template("error.html", message=f"action: choose {', '.join(ACTION_NAMES)}"), 400
    try:
        job_filter, _ = _filter_from(request.form)
        reason = _reason_from_form()
        ids = jobs.ids_matching(job_filter) if request.form.get("all_matching") else _selected_ids()
    except query_params.MalformedParameter as error:
        return _refused(error)
    except jobs.BadQuery as error:
        flash(f"Nothing was done — {error}.", "refused")
        return redirect(url_for("dashboard.job_list", **_link_args(job_filter, {})))
    filter_args = _link_args(job_filter, {})
    result = apply_action(action, ids, actor=auth.acting_as(OPERATOR), reason=reason)
    note(target=f"{len(ids)} jobs", data=bulk_audit(ids, result))
    flash(display.bulk_summary(action_named(action).label, result), "ok" if not result["skipped"] else "refused")
    return redirect(url_for("dashboard.job_list", **filter_args))


def _selected_ids() -> list[int]:
    ids = query_params.job_ids("ids", request.form.getlist("ids"), cap=jobs.BULK_LIMIT)
    if not ids:
        raise jobs.BadQuery("ids", "no jobs were selected")
    return ids


@bp.get("/jobs/counts")
def job_counts():
    """Counts per status for the filter bar, capped so a huge table stays cheap; loaded lazily."""
    try:
        job_filter, _ = _filter_from_args()
    except jobs.BadQuery as error:
        return _refused(error)
    job_filter.statuses = []
    counts = jobs.count_by_status(job_filter, cap=COUNT_CAP)
    return render_template("jobs/_counts.html", counts=counts, cap=COUNT_CAP, filter_args=_link_args(job_filter, {}))


def _job_context(job_id: int) -> dict:
    job = jobs.get_job(job_id)
    hold = waiting_reasons([job])[job.id]
    attempts = jobs.attempts_of(job_id)
    job_steps = jobs.steps_of(job_id)
    checkpoint = steps.checkpoint_of(job_id)
    stored = steps.stored_names(job_id)
    resume_at = steps.first_step_to_run(job_steps, stored)
    resume_label = _resume_label(job_steps, checkpoint, attempts, resume_at)
    # A queued job's own later time (a delay, a retry's backoff): shown as when it runs, and Run now offered.
    waits_until = job.run_after if job.status == Status.QUEUED and job.run_after > utcnow() else None
    actions = actions_from(job.status, durable=resume_label is not None, waiting=waits_until is not None)
    record = recovery_effects.steps_on_record(job_steps, stored, resume_at, checkpoint is not None)
    return {
        "job": job,
        "waiting": display.WAITING_TEXT[hold.reason] if hold else None,
        "waiting_until": hold.until if hold else None,
        "waits_until": waits_until,
        "attempts": attempts,
        "failed_attempt": next((a for a in reversed(attempts) if a.error), None),
        "latest_attempt": attempts[-1] if attempts else None,
        # The log panel shows the newest attempt's lines in full: its output's tail would repeat
        # them. Asked only when there is a tail (the region polls every 2 s).
        "tail_in_log": bool(attempts and attempts[-1].output_tail) and logs.has_log(job_id, attempts[-1].number),
        "command_attempt": next((a for a in reversed(attempts) if a.argv), None),
        "events": jobs.events_of(job_id),
        "steps": job_steps,
        "checkpoint": checkpoint,
        "queue_position": jobs.queue_position(job),
        "queue_position_cap": jobs.QUEUE_POSITION_CAP,
        "timeout": jobs.heartbeat_timeout(job),
        "resume_label": resume_label,
        "actions": actions,
        "effects": recovery_effects.effects(actions, job, record),
    }


def _resume_label(job_steps: list[dict], checkpoint, attempts, resume_at: str | None) -> str | None:
    """ "Resume from step NAME", naming the first step not completed; None when the job has
    no recorded steps nor a checkpoint (then Force start is the same thing)."""
    if not job_steps and checkpoint is None:
        return None
    name = resume_at or (checkpoint.step if checkpoint else None) or (attempts[-1].step if attempts else None)
    return f"Resume from step {name}" if name else "Resume from the last checkpoint"


@bp.get("/jobs/<job_id:job_id>")
def job_page(job_id: int):
    """The job page; its log (an attempt's, `log_attempt`, default the newest) with the whole page,
    or alone for an HTMX request aimed at the log panel (the page asks so when a new attempt
    begins): the log follows itself (`job_log_lines`), the region's polls leave it alone."""
    log_panel = wants_region() and htmx.target == log_view.PANEL_ID
    if log_panel and not auth.may_see_payloads():
        return render_template("error.html", message=LOGS_HIDDEN), 403
    context = {"job": jobs.get_job(job_id)} if log_panel else _job_context(job_id)
    if (log_panel or not wants_region()) and auth.may_see_payloads():
        try:
            attempt = log_view.number_arg(request.args.get("log_attempt"), "log_attempt", low=1)
            context.update(log_view.log_context(job_id, attempt), log_chosen=attempt is not None)
        except jobs.BadQuery as error:
            return _refused(error)
        except logs.AttemptNotFound as error:
            return render_template("error.html", message=str(error)), 404
    return render_region("jobs/show.html", "jobs/_log.html" if log_panel else "jobs/_detail.html", **context)


@bp.get("/jobs/<job_id:job_id>/log")
def job_log_lines(job_id: int):
    """The lines of an attempt's log from byte `offset`, as the page shows them (a fragment the
    page's follower appends); the next offset and whether the attempt ended in headers."""
    if not auth.may_see_payloads():
        return render_template("error.html", message=LOGS_HIDDEN), 403
    try:
        attempt = log_view.number_arg(request.args.get("attempt"), "attempt", low=1)
        offset = log_view.number_arg(request.args.get("offset"), "offset", low=0) or 0
        context = log_view.log_context(job_id, attempt, offset)
    except jobs.BadQuery as error:
        return _refused(error)
    except logs.AttemptNotFound as error:
        return render_template("error.html", message=str(error)), 404
    response = make_response(render_template("jobs/_log_lines.html", **context))
    found = context["log"]
    response.headers[log_view.NEXT_OFFSET_HEADER] = str(found.slice.next_offset)
    response.headers[log_view.FINAL_HEADER] = "1" if found.final else "0"
    response.headers[log_view.ATTEMPT_HEADER] = str(found.attempt or "")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/jobs/<job_id:job_id>/<action>")
def job_action(job_id: int, action: str):
    """Run one recovery action; answer the whole re-rendered job region (HTMX) or go back to the job page."""
    if action not in ACTION_NAMES:
        abort(404)
    chosen = action_named(action)
    try:
        reason = _reason_from_form()
    except jobs.BadQuery as error:
        return _refused(error)
    try:
        run_action(chosen, job_id, actor=auth.acting_as(OPERATOR), reason=reason)
        message, ok = f"{chosen.label}: done.", True
    except TransitionRefused as refused:
        message, ok = f"Already {refused.status} — nothing was done.", False
        note(outcome=f"409 conflict: already {refused.status}")
    if htmx:
        return render_template("jobs/_detail.html", message=message, ok=ok, **_job_context(job_id))
    flash(message, "ok" if ok else "refused")
    return redirect(url_for("dashboard.job_page", job_id=job_id))


def _login_rate_limit() -> str:
    return current_app.config["JOBWARDEN_LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"], error_message="Too many login attempts; wait a minute.")
def login():
    """Sign in with a name and password (no name: the admin password), or through OpenID Connect."""
    if not auth.sign_in_required():
        return redirect(url_for("dashboard.job_list"))
    next_path = oidc.local_path(request.values.get("next"))
    error = None
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        if auth.log_in(name, request.form.get("password", "")):
            return redirect(next_path or url_for("dashboard.job_list"))
        error = "Wrong name or password."
    return render_template("login.html", error=error, next_path=next_path), 401 if error else 200


@bp.post("/logout")
def logout():
    auth.log_out()
    return redirect(url_for("dashboard.job_list"))


@bp.get("/health")
def health():
    """What is stuck, the workers, alerts for queued types nobody takes, and the monitor's passes."""
    report = monitor.health_report()
    return render_region(
        "health/index.html",
        "health/_report.html",
        report=report,
        cap=report["counts_cap"],
        current_jobs=current_jobs_by_worker(),
    )


MAX_FILTER_CHARS = 200  # a type or queue name


@bp.get("/stats")
def stats():
    """Throughput, failure rate, queue latency and depth over 1 h, 24 h, 7 d or 30 d (all jobs,
    `type` or `queue`), as server-rendered SVG charts and tables."""
    key = request.args.get("window") or DEFAULT_WINDOW
    if key not in WINDOWS:
        return render_template("error.html", message=f"window: choose {', '.join(WINDOWS)}"), 400
    try:  # text the database can compare: bounded, no NUL (PostgreSQL refuses it: a 500 before)
        job_type, queue = (
            query_params.text(name, request.args.get(name), MAX_FILTER_CHARS) for name in ("type", "queue")
        )
    except jobs.BadQuery as error:
        return _refused(error)
    now = utcnow()
    return render_template(
        "stats.html",
        stats=over(now, WINDOWS[key]),
        trends=trends(now, WINDOWS[key], job_type=job_type, queue=queue),
        windows=WINDOWS,
        job_type=job_type,
        queue=queue,
    )
