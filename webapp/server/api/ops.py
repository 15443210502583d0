"""Operational routes: liveness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint, Response, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ...store.extensions import db
from ...store.schema import schema_problem
from .. import exposition
from ..current import current_flask_app
from . import answers
from .spec import openapi_document, operation

bp = Blueprint("ops", __name__)


@operation(
    bp,
    "GET",
    "/healthz",
    summary="Liveness: the app and its database answer, with the whole schema",
    responses={
        200: answers.Liveness,
        503: ("The database does not answer, or its schema is missing", answers.Liveness),
    },
)
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
        problem = schema_problem(db.session.connection())
    except SQLAlchemyError:
        db.session.rollback()
        current_app.logger.warning("healthz: the database does not answer", exc_info=True)
        return {"status": "unavailable", "message": "the database does not answer"}, 503
    if problem is not None:
        return {"status": "unavailable", "message": problem}, 503
    return {"status": "ok"}


@operation(
    bp,
    "GET",
    "/metrics",
    summary="Prometheus metrics",
    responses={200: ("Prometheus text format", None)},
    media_type="text/plain",
)
def prometheus_metrics():
    body, content_type = exposition.render(current_flask_app())
    return Response(body, content_type=content_type)


@operation(bp, "GET", "/api/openapi.json", summary="This document", responses={200: ("OpenAPI 3.1", None)})
def openapi():
    return openapi_document(title="Jobwarden", version=_version())


def _version() -> str:
    try:
        return version("jobwarden")
    except PackageNotFoundError:
        return "0"
