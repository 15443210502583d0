"""`/api/queues`: each queue's limits, pause and numbers; set limits, pause and resume.

Viewers read; changes need an admin (webapp.server.access). Limits are checked by `webapp.jobs.queues`, whose
refusal names the field; a pause or resume is recorded with its actor and reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from flask import Blueprint
from pydantic import BaseModel, Field, model_validator

from ...domain.actors import API
from ...domain.queues import (
    MAX_CONCURRENCY,
    MAX_RATE_LIMIT,
    MAX_RATE_PERIOD_S,
    MIN_RATE_PERIOD_S,
    QUEUE_NAME_MAX_CHARS,
)
from ...jobs import queues
from ...jobs.query_params import BadQuery
from .. import auth
from .public import OPERATOR, WRITE_ERRORS
from .schemas import Body, Name, Reason
from .spec import invalid_query, operation

bp = Blueprint("queues_api", __name__, url_prefix="/api")


class RateLimitIn(Body):
    limit: int = Field(ge=1, le=MAX_RATE_LIMIT, description="Starts at most, in any window of period_s.")
    period_s: float = Field(ge=MIN_RATE_PERIOD_S, le=MAX_RATE_PERIOD_S)


class QueueLimits(Body):
    """Only the fields sent change; null clears a limit."""

    concurrency: Annotated[int | None, Field(ge=0, le=MAX_CONCURRENCY)] = Field(
        None, description="Live jobs (claimed + running) at most; 0 holds every job back."
    )
    key_concurrency: Annotated[int | None, Field(ge=1, le=MAX_CONCURRENCY)] = Field(
        None, description="Live jobs per concurrency_key at most."
    )
    rate_limit: RateLimitIn | None = None
    reason: Reason | None = None

    @model_validator(mode="after")
    def names_a_setting(self) -> QueueLimits:
        if not self.model_fields_set - {"reason"}:
            raise ValueError("send at least one of concurrency, key_concurrency, rate_limit")
        return self


class PauseBody(Body):
    reason: Reason | None = None


class RateLimitOut(BaseModel):
    limit: int
    period_s: float


class QueueOut(BaseModel):
    name: str
    paused: bool
    concurrency: int | None
    key_concurrency: int | None
    rate_limit: RateLimitOut | None
    queued: int = Field(description="queued jobs, counted up to queued_cap + 1 (more than the cap reads as cap + 1)")
    queued_cap: int
    running: int = Field(description="claimed + running: what concurrency counts")
    oldest_queued_s: float | None = Field(
        description="seconds the longest-waiting ready job has waited since its run_after (null: none is ready)"
    )
    finished_last_hour: int


class QueueList(BaseModel):
    queues: list[QueueOut]


QueueName = Annotated[Name, Field()]


@operation(bp, "GET", "/queues", summary="Every queue: limits, pause, depth and load", responses={200: QueueList})
def list_queues():
    """A queue exists once named, by a job or by a setting."""
    return {"queues": [view.json() for view in queues.list_queues()]}


@operation(
    bp,
    "PATCH",
    "/queues/<name>",
    summary="Set a queue's limits (null clears one); effective on the next claim",
    body=QueueLimits,
    responses={200: QueueOut},
    errors=(400, *WRITE_ERRORS),
    security=OPERATOR,
)
def set_limits(name: str, body: QueueLimits):
    changes = body.model_dump(exclude_unset=True, exclude={"reason"})
    with invalid_query():
        queues.set_limits(_name(name), changes, actor=auth.acting_as(API), reason=body.reason)
        return queues.get_queue(name).json()


@operation(
    bp,
    "POST",
    "/queues/<name>/pause",
    summary="Pause a queue: claims skip it, running jobs go on",
    body=PauseBody,
    body_required=False,
    responses={200: QueueOut},
    errors=(400, *WRITE_ERRORS),
    security=OPERATOR,
)
def pause(name: str, body: PauseBody | None = None):
    return _change_pause(queues.pause, name, body)


@operation(
    bp,
    "POST",
    "/queues/<name>/resume",
    summary="Resume a paused queue",
    body=PauseBody,
    body_required=False,
    responses={200: QueueOut},
    errors=(400, *WRITE_ERRORS),
    security=OPERATOR,
)
def resume(name: str, body: PauseBody | None = None):
    return _change_pause(queues.resume, name, body)


def _change_pause(change: Callable[..., object], name: str, body: PauseBody | None):
    """Pause or resume (`change`), recorded with the API as actor and the body's reason; the queue as it is now."""
    with invalid_query():
        change(_name(name), actor=auth.acting_as(API), reason=body.reason if body else None)
        return queues.get_queue(name).json()


def _name(name: str) -> str:
    if not 1 <= len(name) <= QUEUE_NAME_MAX_CHARS or "\x00" in name:
        raise BadQuery("name", f"a queue name is 1 to {QUEUE_NAME_MAX_CHARS} characters")
    return name
