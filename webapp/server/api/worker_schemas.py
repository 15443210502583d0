"""The internal API a worker speaks: the claim, the lease-fenced reports (one by one or
batched) and their answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from ...config import MAX_CLAIM_WAIT_S
from ...domain.limits import (
    ARGV_ITEM_MAX_CHARS,
    ARGV_MAX_ITEMS,
    LOG_ITEM_MAX_BYTES,
    MAX_DELAY_S,
    MAX_REPORTS_PER_BATCH,
)
from ...domain.statuses import Status
from ...domain.step_limits import MAX_CHECKPOINT_BYTES, MAX_STEP_RESULT_BYTES
from .answers import CheckpointOut, JobOut
from .schemas import (
    INT32,
    Answer,
    Body,
    ExitCode,
    Hostname,
    JobId,
    JobJson,
    Name,
    ProcessText,
    Stage,
    StepName,
    WorkerId,
    at_most,
    no_nul,
    once_each,
)


class Claim(Body):
    worker_id: WorkerId
    types: Annotated[list[Name] | None, AfterValidator(once_each)] = Field(
        None, max_length=200, description="Only these types; an empty list claims nothing. Leave out for any type."
    )
    queues: Annotated[list[Name] | None, AfterValidator(once_each)] = Field(
        None, max_length=200, description="Only jobs of these queues; an empty list claims nothing. Leave out for any."
    )
    batch_size: int = Field(1, ge=1, le=100)
    wait_s: float = Field(0, ge=0, le=MAX_CLAIM_WAIT_S, description="with nothing ready, wait up to this long")
    start: bool = Field(
        False,
        description="Start the claimed jobs too: they come back running (claimed → running in the claim's "
        "statement, both events recorded), so no start report is needed before they run.",
    )


class Lease(Body):
    lease_token: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(no_nul)]


Argv = Annotated[
    list[Annotated[str, Field(max_length=ARGV_ITEM_MAX_CHARS), AfterValidator(no_nul)]] | None,
    Field(
        None,
        min_length=1,
        max_length=ARGV_MAX_ITEMS,
        description="A command job's command line as the worker filled it in, stored on the attempt "
        "and shown on the job page. Left out for Python handlers.",
    ),
]


class Start(Lease):
    """The start report: claimed → running."""

    argv: Argv = None


class CheckpointIn(Body):
    data: Annotated[JobJson, at_most(MAX_CHECKPOINT_BYTES)] = None
    step: StepName | None = Field(None, description="The innermost step open when the handler checkpointed.")


class Heartbeat(Lease):
    progress: float | None = Field(None, ge=0, le=100)
    stage: Stage | None = None
    current_step: StepName | None = None
    output: ProcessText | None = None
    checkpoint: CheckpointIn | None = Field(
        None, description="The handler's newest checkpoint, replacing the stored one."
    )
    argv: Argv = Field(None, description="As the start's `argv`, for a job its claim started (no start report).")


class Step(Lease):
    name: StepName
    event: Literal["started", "completed", "failed", "retrying", "replayed"]
    attempt: int | None = Field(None, ge=1, le=INT32)
    phase: Name | None = None
    error: ProcessText | None = None
    result: Annotated[JobJson, at_most(MAX_STEP_RESULT_BYTES)] = Field(
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
    retry_in_s: float | None = Field(
        None,
        ge=0,
        le=MAX_DELAY_S,
        description="The handler's own wait before the retry (an upstream's Retry-After) instead of the backoff; "
        "a retry needs attempts left.",
    )


class Stopped(Lease):
    output: ProcessText | None = None
    attempt: int | None = Field(
        None, ge=1, le=INT32, description="The attempt whose process stopped: the job need not wait for its lease."
    )


def _within_log_item(value: str) -> str:
    if len(value.encode("utf-8")) > LOG_ITEM_MAX_BYTES:
        raise ValueError(f"at most {LOG_ITEM_MAX_BYTES} bytes of log text per report")
    return value


class Log(Lease):
    offset: int = Field(ge=0, le=2**62, description="The byte offset of `text` in the attempt's log.")
    text: Annotated[ProcessText, Field(min_length=1), AfterValidator(_within_log_item)] = Field(
        description="Whole lines of the attempt's log (webapp.domain.log_lines), stored once per offset."
    )


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


class LogItem(Log, Addressed):
    kind: Literal["log"]


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
        StartItem | HeartbeatItem | StepItem | CompleteItem | FailItem | StoppedItem | LogItem,
        Field(discriminator="kind"),
    ],
    WrapValidator(_each_on_its_own),
]


class Reports(Body):
    items: list[ReportItem] = Field(
        min_length=1,
        max_length=MAX_REPORTS_PER_BATCH,
        description="Each item is the body of its single report plus `kind` and `job_id`; "
        f"each is applied on its own and answered in order. At most {MAX_REPORTS_PER_BATCH}: "
        "the batch is one transaction, and on SQLite every other writer waits for it.",
    )


class WorkerHeartbeat(Body):
    worker_id: WorkerId
    hostname: Hostname | None = None
    pid: int | None = Field(None, ge=0, le=INT32)
    types: list[Name] | None = Field(None, max_length=200)
    concurrency: int | None = Field(None, ge=1, le=10_000)


class StoredStep(Answer):
    result: Any = None
    attempt: int


class ClaimedJob(JobOut):
    lease_token: str
    lease_s: float = Field(
        description="How long the lease lasts from the claim and from each heartbeat: a worker that "
        "cannot renew it stops the job before it runs out."
    )
    step_results: dict[str, StoredStep] = Field(description="Completed durable steps by name: replayed, not run.")
    checkpoint: CheckpointOut | None


class ClaimedJobs(Answer):
    jobs: list[ClaimedJob]


class HeartbeatAnswer(Answer):
    cancel_requested: bool
    status: Status


class Accepted(Answer):
    ok: bool


class WorkerHeartbeatAnswer(Accepted):
    gone: bool = Field(
        description="The worker is taken for gone (it fell silent past the heartbeat timeout, or its "
        "presence connection dropped) and its jobs were orphaned. A heartbeat never revives it: it "
        "sends a new presence request (`/workers/presence`), which does."
    )


class LogStored(Answer):
    stored: bool = Field(description="False: the lease is no longer current, or the piece was stored before.")


class ReportResult(Answer):
    code: int = Field(description="What the single report would have answered: 200, 400, 404 or 409.")
    ok: bool | None = None
    stored: bool | None = Field(None, description="A log piece's answer.")
    cancel_requested: bool | None = Field(None, description="A heartbeat's answer.")
    status: str | None = Field(None, description="A heartbeat's answer, or the job's current status on 409.")
    error: str | None = Field(None, description="invalid, not_found, conflict, lease_lost")
    message: str | None = None
    field: str | None = Field(None, description="On 400: the field, as items[i].name.")


class ReportResults(Answer):
    results: list[ReportResult]


class WorkerPresence(Body):
    worker_id: WorkerId
    wait_s: float = Field(
        MAX_CLAIM_WAIT_S / 2, gt=0, le=MAX_CLAIM_WAIT_S, description="hold the request this long; then send it again"
    )


class WorkerGoodbye(Body):
    worker_id: WorkerId
