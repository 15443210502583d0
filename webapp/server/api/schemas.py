"""The field types every API model shares, and the bases of bodies and answers.

The models themselves are by audience: `bodies` (the public API's requests),
`answers` (what it returns), `worker_schemas` (the internal API a worker speaks).
They validate every body and query, and the OpenAPI document is generated from
them, so the two cannot drift."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    Strict,
    model_validator,
)

from ...domain.limits import MAX_REASON_CHARS
from ...domain.statuses import Status
from ...domain.step_limits import json_size
from ...domain.timeutil import in_utc
from ...store.column_limits import HOSTNAME_MAX, JOB_TYPE_MAX, STAGE_MAX, STEP_NAME_MAX, WORKER_ID_MAX
from .json_input import safe_integers

INT32 = 2**31 - 1
MAX_BATCH = 1000


def no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it on every backend alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def no_nul_anywhere(value: Any) -> Any:
    if isinstance(value, str):
        no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            no_nul(key)
            no_nul_anywhere(item)
    elif isinstance(value, list):
        for item in value:
            no_nul_anywhere(item)
    return value


def once_each(values: list | None) -> list | None:
    # A repeated value counts once (it was capped, as sent, by max_length).
    return None if values is None else list(dict.fromkeys(values))


def nul_to_replacement(value: Any) -> Any:
    # Worker output is raw process output: keep it, minus what the store cannot hold.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def at_most(limit: int):
    def check(value: Any) -> Any:
        size = json_size(value)
        if size > limit:
            raise ValueError(f"is {size} bytes as JSON; at most {limit} are stored")
        return value

    return AfterValidator(check)


Text = Annotated[str, AfterValidator(no_nul)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(no_nul)]
# Names that are stored: each as long as the columns it lands in allow (webapp.store.column_limits).
JobType = Annotated[str, Field(min_length=1, max_length=JOB_TYPE_MAX), AfterValidator(no_nul)]
WorkerId = Annotated[str, Field(min_length=1, max_length=WORKER_ID_MAX), AfterValidator(no_nul)]
StepName = Annotated[str, Field(min_length=1, max_length=STEP_NAME_MAX), AfterValidator(no_nul)]
Stage = Annotated[str, Field(min_length=1, max_length=STAGE_MAX), AfterValidator(no_nul)]
Hostname = Annotated[str, Field(min_length=1, max_length=HOSTNAME_MAX), AfterValidator(no_nul)]
Reason = Annotated[str, Field(max_length=MAX_REASON_CHARS), AfterValidator(no_nul)]
JobJson = Annotated[JsonValue, AfterValidator(no_nul_anywhere), AfterValidator(safe_integers)]
ProcessText = Annotated[str, BeforeValidator(nul_to_replacement), Field(max_length=1_000_000)]
JobId = Annotated[int, Field(ge=1, le=2**63 - 1)]


def has_a_utc_instant(value: datetime) -> datetime:
    if value.tzinfo is not None and in_utc(value) is None:
        raise ValueError("no UTC time is that far out")
    return value


def written_as_text(value: Any) -> Any:
    # A number is no time: lax parsing would read 1700000000 as a Unix time.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 time as a string")
    return value


# A time a client sends: one its zone names but UTC cannot (0001-01-01T00:00+14:00) is refused.
UtcTime = Annotated[datetime, AfterValidator(has_a_utc_instant)]
# A time in a JSON body: text, read as ISO 8601 with its zone.
TimeText = Annotated[AwareDatetime, Strict(False), BeforeValidator(written_as_text)]
# A status named in a JSON body.
StatusName = Annotated[Status, Strict(False)]
ExitCode = Annotated[int, Field(ge=-INT32, le=INT32)]


class Body(BaseModel):
    """JSON request bodies: unknown fields are refused, so a typo never passes silently, and a
    value of the wrong JSON type is refused rather than converted (`true` is no priority, `"5"`
    no count, `1` no yes/no). Times and statuses are JSON strings; they take `Strict(False)`
    (`TimeText`, `StatusName`) to be read from them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def whole_numbers_are_integers(cls, data: Any) -> Any:
        """JSON has one kind of number: 300.0 is the integer 300 (Python's json.dumps writes a
        float so, as in `every_s=timedelta(minutes=5).total_seconds()`); 2.5 stays refused."""
        if not isinstance(data, dict):
            return data
        whole = {
            name: int(value)
            for name in _integer_fields(cls)
            if isinstance(value := data.get(name), float) and value.is_integer()
        }
        return {**data, **whole} if whole else data


@cache
def _integer_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(name for name, field in model.model_fields.items() if int in _types_in(field.annotation))


def _types_in(annotation: Any) -> set[Any]:
    return {annotation}.union(*(_types_in(arg) for arg in get_args(annotation)))


class Query(BaseModel):
    """Parameters of a URL's query: every value arrives as text and is read as its field's type;
    unknown names are refused as in a body."""

    model_config = ConfigDict(extra="forbid", strict=False)


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(Answer):
    error: str = Field(
        description="invalid, not_found, conflict, lease_lost, unauthorized, forbidden, cross_site, read_only, too_large, unsupported_media_type, …"
    )
    message: str
    field: str | None = None
    status: str | None = Field(None, description="The job's current status, on 409.")
