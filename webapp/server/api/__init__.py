"""The JSON APIs: public (`/api`), internal for workers (`/api/internal`), and
the operational routes (`/healthz`, `/metrics`, `/api/openapi.json`)."""

from __future__ import annotations

from contextlib import suppress

from flask import Flask, render_template, request
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from ...domain import statuses
from .. import auth, query_time
from .spec import ApiError, refused


def register(app: Flask) -> None:
    from ...store.extensions import db
    from ..extensions import csrf
    from . import alerts, identity, internal, ops, public, queues, schedules, webhooks

    for blueprint in (
        public.bp,
        internal.bp,
        ops.bp,
        webhooks.bp,
        schedules.bp,
        schedules.internal_bp,
        queues.bp,
        identity.bp,
        alerts.bp,
    ):
        # JSON routes authenticate with headers (Bearer, Basic), never the session cookie: no CSRF token needed.
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        """Under /api every error is JSON; elsewhere Flask's (and the dashboard's) pages stand."""
        if isinstance(error, ApiError) or not _is_api_request():
            return error
        names = {
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
            401: "unauthorized",
            403: "forbidden",
            415: "unsupported_media_type",
            429: "too_many_requests",
        }
        code = error.code or 500
        # Keep what the answer says besides its body: Allow (405), Retry-After (429, 503).
        kept = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
        return ApiError(code, names.get(code, "error"), error.description or error.name, headers=kept)

    @app.errorhandler(statuses.JobNotFound)
    def job_not_found(error: statuses.JobNotFound):
        if not _is_api_request():
            return error  # the dashboard's own handler renders its page
        return refused(error)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(error: Exception):
        """The database went away mid-request: 503, which clients and workers retry, never a 500."""
        with suppress(SQLAlchemyError):
            db.session.rollback()
        if query_time.was_cut(error):
            return _too_expensive()
        app.logger.error("the database does not answer: %s", getattr(error, "orig", error))
        if _is_api_request():
            return ApiError(503, "unavailable", "the database does not answer; try again shortly")
        auth.undecided_while_the_database_is_down()
        return render_template("error.html", message="The database does not answer; try again shortly."), 503

    @app.errorhandler(statuses.TransitionRefused)
    def transition_refused(error: statuses.TransitionRefused):
        return refused(error)


def _too_expensive():
    """A read cut by its database-time bound: the request's fault, so a 400 (see webapp.server.query_time)."""
    if _is_api_request():
        return ApiError(400, "invalid", f"query: {query_time.message()}", field="query")
    return render_template("error.html", message=f"query: {query_time.message()}"), 400


def _is_api_request() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/metrics")
