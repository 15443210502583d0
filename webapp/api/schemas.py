"""The API's request and answer models: they validate every body and query,
and the OpenAPI document is generated from them, so the two cannot drift."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from ..actions import ACTION_NAMES
from ..config import MAX_CLAIM_WAIT_S
from ..limits import ARGV_ITEM_MAX_CHARS, ARGV_MAX_ITEMS
from ..states import Status
from ..step_limits import MAX_CHECKPOINT_BYTES, MAX_STEP_RESULT_BYTES, json_size
from .json_input import safe_integers

INT32 = 2**31 - 1
MAX_BATCH = 1000


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it on every backend alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _no_nul_anywhere(value: Any) -> Any:
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul_anywhere(item)
    elif isinstance(value, list):
        for item in value:
            _no_nul_anywhere(item)
    return value


def _once_each(values: list | None) -> list | None:
    # A repeated value counts once (it was capped, as sent, by max_length).
    return None if values is None else list(dict.fromkeys(values))


def _nul_to_replacement(value: Any) -> Any:
    # Worker output is raw process output: keep it, minus what the store cannot hold.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _at_most(limit: int):
    def check(value: Any) -> Any:
        size = json_size(value)
        if size > limit:
            raise ValueError(f"is {size} bytes as JSON; at most {limit} are stored")
        return value

    return AfterValidator(check)


Text = Annotated[str, AfterValidator(_no_nul)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Reason = Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)]
JobJson = Annotated[JsonValue, AfterValidator(_no_nul_anywhere), AfterValidator(safe_integers)]
ProcessText = Annotated[str, BeforeValidator(_nul_to_replacement), Field(max_length=1_000_000)]
JobId = Annotated[int, Field(ge=1, le=2**63 - 1)]
ExitCode = Annotated[int, Field(ge=-INT32, le=INT32)]


class Body(BaseModel):
    """Request bodies: unknown fields are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", strict=False)


# --- public API -------------------------------------------------------------------------


class CreateJob(Body):
    type: Name = Field(description="What the job does; workers pick their handler by it.")
    payload: JobJson = None
    priority: int = Field(0, ge=-1_000_000, le=1_000_000, description="Higher runs first.")
    max_attempts: int | None = Field(None, ge=1, le=1000, description="Default JOBWARDEN_DEFAULT_MAX_ATTEMPTS.")
    timeout_s: int | None = Field(None, ge=1, le=30 * 24 * 3600, description="The worker kills the job after this.")
    hold: bool = Field(False, description="Create as pending: released by force-start.")


class BulkCreate(Body):
    jobs: list[CreateJob] = Field(min_length=1, max_length=MAX_BATCH)


SortKey = Literal["id", "created_at", "updated_at", "priority", "type", "status"]  # jobs.SORT_COLUMNS


class JobQuery(Body):
    """The list's filters; also the `filter` of a bulk action."""

    status: Annotated[list[Status], AfterValidator(_once_each)] = Field(default_factory=list, max_length=len(Status))
    type: Name | None = None
    worker: Name | None = None
    schedule: Name | None = None
    q: Annotated[str, Field(max_length=200), AfterValidator(_no_nul)] | None = None


class ListQuery(JobQuery):
    sort: SortKey = "id"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(50, ge=1, le=500)
    cursor: Annotated[str, Field(max_length=500), AfterValidator(_no_nul)] | None = None


class ReasonBody(Body):
    reason: Reason | None = None


class BulkAction(Body):
    action: Literal[ACTION_NAMES]  # type: ignore[valid-type]  # the names, from webapp.actions
    reason: Reason | None = None
    ids: list[JobId] | None = Field(None, min_length=1, max_length=MAX_BATCH)
    filter: JobQuery | None = None

    @model_validator(mode="after")
    def _ids_or_filter(self) -> BulkAction:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter, not both and not neither")
        return self


# --- internal (worker) API -------------------------------------------------------------


class Claim(Body):
    worker_id: Name
    types: Annotated[list[Name] | None, AfterValidator(_once_each)] = Field(
        None, max_length=200, description="Only these types; an empty list claims nothing. Leave out for any type."
    )
    batch_size: int = Field(1, ge=1, le=100)
    wait_s: float = Field(0, ge=0, le=MAX_CLAIM_WAIT_S, description="with nothing ready, wait up to this long")


class Lease(Body):
    lease_token: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_nul)]


class Start(Lease):
    """The start report: claimed → running."""

    argv: list[Annotated[str, Field(max_length=ARGV_ITEM_MAX_CHARS), AfterValidator(_no_nul)]] | None = Field(
        None,
        min_length=1,
        max_length=ARGV_MAX_ITEMS,
        description="A command job's command line as the worker filled it in, stored on the attempt "
        "and shown on the job page. Left out for Python handlers.",
    )


class CheckpointIn(Body):
    data: Annotated[JobJson, _at_most(MAX_CHECKPOINT_BYTES)] = None
    step: Name | None = Field(None, description="The innermost step open when the handler checkpointed.")


class Heartbeat(Lease):
    progress: float | None = Field(None, ge=0, le=100)
    stage: Name | None = None
    current_step: Name | None = None
    output: ProcessText | None = None
    checkpoint: CheckpointIn | None = Field(
        None, description="The handler's newest checkpoint, replacing the stored one."
    )


class Step(Lease):
    name: Name
    event: Literal["started", "completed", "failed", "retrying", "replayed"]
    attempt: int | None = Field(None, ge=1, le=INT32)
    phase: Name | None = None
    error: ProcessText | None = None
    result: Annotated[JobJson, _at_most(MAX_STEP_RESULT_BYTES)] = Field(
        None,
        description="With `completed`: stored as the step's result (even null) and replayed by later "
        "attempts instead of running the step again. Left out: nothing is stored.",
    )
    result_attempt: int | None = Field(
        None, ge=1, le=INT32, description="With `replayed`: the attempt that completed the step."
    )
    step_attempt: int | None = Field(None, ge=1, le=INT32, description="With `retrying`: the step's own next try.")


class Complete(Lease):
    result: JobJson = None
    exit_code: ExitCode | None = 0
    output: ProcessText | None = None


class Fail(Lease):
    error: Annotated[ProcessText, Field(min_length=1)]
    exit_code: ExitCode | None = None
    output: ProcessText | None = None
    retryable: bool = True
    interrupted: bool = Field(False, description="Handed back at shutdown: queued again, not counted as a failure.")


class Stopped(Lease):
    output: ProcessText | None = None


class Addressed(Body):
    job_id: JobId


# One batch item per single report: the single route's model, plus the job and the kind.
class StartItem(Start, Addressed):
    kind: Literal["start"]


class HeartbeatItem(Heartbeat, Addressed):
    kind: Literal["heartbeat"]


class StepItem(Step, Addressed):
    kind: Literal["step"]


class CompleteItem(Complete, Addressed):
    kind: Literal["complete"]


class FailItem(Fail, Addressed):
    kind: Literal["fail"]


class StoppedItem(Stopped, Addressed):
    kind: Literal["stopped"]


class BadItem:
    """An item that did not validate: answered 400 on its own, the others still apply."""

    def __init__(self, error: ValidationError):
        self.error = error


def _each_on_its_own(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as error:
        return BadItem(error)


ReportItem = Annotated[
    Annotated[
        StartItem | HeartbeatItem | StepItem | CompleteItem | FailItem | StoppedItem, Field(discriminator="kind")
    ],
    WrapValidator(_each_on_its_own),
]


class Reports(Body):
    items: list[ReportItem] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Each item is the body of its single report plus `kind` and `job_id`; "
        "each is applied on its own and answered in order.",
    )


class WorkerHeartbeat(Body):
    worker_id: Name
    hostname: Name | None = None
    pid: int | None = Field(None, ge=0, le=INT32)
    types: list[Name] | None = Field(None, max_length=200)
    concurrency: int | None = Field(None, ge=1, le=10_000)


# --- answers (documentation; the serializers in serialize.py produce them) -----------------

Time = Annotated[str | None, Field(description="ISO 8601 UTC")]


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class JobOut(Answer):
    id: int
    type: str
    payload: Any = None
    status: Status
    priority: int
    attempt: int
    max_attempts: int
    timeout_s: int | None
    progress: float | None
    stage: str | None
    current_step: str | None
    worker_id: str | None
    heartbeat_at: Time
    run_after: Time
    created_at: Time
    claimed_at: Time
    started_at: Time
    finished_at: Time
    updated_at: Time
    result: Any = None
    last_error: str | None
    exit_code: int | None
    cancel_requested: bool
    schedule: str | None = Field(None, description="The schedule that made the job, if one did.")
    scheduled_for: Time = Field(None, description="The fire time the schedule made it for (UTC).")


class AttemptOut(Answer):
    number: int
    worker_id: str | None
    claimed_at: Time
    started_at: Time
    finished_at: Time
    outcome: str | None
    error: str | None
    exit_code: int | None
    step: str | None
    output_tail: str | None
    argv: list[str] | None = Field(None, description="The command line the attempt ran (command jobs).")


class StepOut(Answer):
    name: str | None
    attempt: int | None
    status: str | None
    started_at: Time
    finished_at: Time
    phase: str | None
    error: str | None
    result_attempt: int | None = Field(None, description="The attempt whose stored result the step has.")
    step_attempt: int | None = Field(None, description="The step's own try, when it was retried in place.")


class CheckpointOut(Answer):
    at: Time
    step: str | None
    attempt: int
    data: Any = None


class JobDetail(JobOut):
    queue_position: int | None
    attempts: list[AttemptOut]
    steps: list[StepOut]
    checkpoint: CheckpointOut | None


class EventOut(Answer):
    id: int
    at: Time
    kind: Literal["status", "step", "note"]
    actor: str
    action: str | None
    from_status: str | None
    to_status: str | None
    attempt: int | None
    reason: str | None
    data: Any = None


class JobList(Answer):
    jobs: list[JobOut]
    next_cursor: str | None


class EventList(Answer):
    events: list[EventOut]


class CreatedIds(Answer):
    ids: list[int]


class Skipped(Answer):
    id: int
    status: str | None
    reason: str


class ActionResult(Answer):
    changed: int
    skipped: list[Skipped]


class StoredStep(Answer):
    result: Any = None
    attempt: int


class ClaimedJob(JobOut):
    lease_token: str
    step_results: dict[str, StoredStep] = Field(description="Completed durable steps by name: replayed, not run.")
    checkpoint: CheckpointOut | None


class ClaimedJobs(Answer):
    jobs: list[ClaimedJob]


class HeartbeatAnswer(Answer):
    cancel_requested: bool
    status: Status


class Accepted(Answer):
    ok: bool


class ReportResult(Answer):
    code: int = Field(description="What the single report would have answered: 200, 400, 404 or 409.")
    ok: bool | None = None
    cancel_requested: bool | None = Field(None, description="A heartbeat's answer.")
    status: str | None = Field(None, description="A heartbeat's answer, or the job's current status on 409.")
    error: str | None = Field(None, description="invalid, not_found, conflict, lease_lost")
    message: str | None = None
    field: str | None = Field(None, description="On 400: the field, as items[i].name.")


class ReportResults(Answer):
    results: list[ReportResult]


class Health(Answer):
    healthy: bool
    orphaned_jobs: list[dict[str, Any]]
    late_jobs: list[dict[str, Any]]
    stale_pending_jobs: list[dict[str, Any]]
    counts: dict[str, int]
    workers: list[dict[str, Any]]
    unserved_types: list[str] = Field(description="Types of queued jobs that no live worker takes.")
    monitor: dict[str, Any]
    webhooks: dict[str, Any] = Field(
        description="`disabled_endpoints` (failing for a day, no longer sent to) and `failing_endpoints`."
    )


class CleanupResult(Answer):
    skipped: bool


class Liveness(Answer):
    status: Literal["ok", "unavailable"]
    message: str | None = Field(
        None, description="why unavailable: the database does not answer, or which schema is missing"
    )


class Error(Answer):
    error: str = Field(
        description="invalid, not_found, conflict, lease_lost, unauthorized, forbidden, cross_site, read_only, too_large, unsupported_media_type, …"
    )
    message: str
    field: str | None = None
    status: str | None = Field(None, description="The job's current status, on 409.")
