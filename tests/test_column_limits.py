"""Every string the API stores fits the column it lands in (issue 24, item 3).

A 194-character worker id passed the claim's schema and then overflowed the
step event's varchar(200) actor ("worker:" + id): a 500 on PostgreSQL. The walk
below reads every input schema's string fields from its JSON schema and every
string column of the models: a new field must say where it lands, a new column
who writes it, and each field's limit must fit all of its columns.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from sqlalchemy import String, select

from webapp.domain.actors import WORKER_PREFIX
from webapp.server.api import (
    alert_schemas,
    bodies,
    identity_schemas,
    queues,
    schedule_schemas,
    schemas,
    webhook_schemas,
    worker_schemas,
)
from webapp.store.column_limits import WORKER_ID_MAX
from webapp.store.extensions import Model, db
from webapp.store.models import (
    Alert,
    AlertRule,
    ApiToken,
    Checkpoint,
    Job,
    JobAttempt,
    JobEvent,
    JobLogChunk,
    JobRollup,
    Queue,
    QueueEvent,
    QueueStart,
    Schedule,
    StepResult,
    WebhookEndpoint,
    Worker,
)

from tests.conftest import INTERNAL_KEY

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}
UNBOUNDED = None  # a Text or JSON column: any length the edge allows

# Where each stored field lands: (column, what the store writes in front of the value).
# Keyed by the class that declares the field; its subclasses (the batch items) inherit it.
LANDS_IN: dict[str, list[tuple[Any, str]]] = {
    "CreateJob.type": [(Job.type, ""), (JobRollup.type, "")],
    "Claim.worker_id": [
        (Job.worker_id, ""),
        (JobAttempt.worker_id, ""),
        (Worker.id, ""),
        (JobEvent.actor, WORKER_PREFIX),
    ],
    "WorkerHeartbeat.worker_id": [(Worker.id, ""), (JobEvent.actor, WORKER_PREFIX)],
    "WorkerHeartbeat.hostname": [(Worker.hostname, "")],
    "WorkerHeartbeat.types": [(Worker.types, "")],
    "Heartbeat.stage": [(Job.stage, "")],
    "Heartbeat.current_step": [(Job.current_step, ""), (JobAttempt.step, "")],
    "Heartbeat.output": [(JobAttempt.output_tail, "")],
    "Heartbeat.argv": [(JobAttempt.argv, "")],
    "CheckpointIn.step": [(Checkpoint.step, "")],
    "Step.name": [(Job.current_step, ""), (JobAttempt.step, ""), (StepResult.name, ""), (JobEvent.data, "")],
    "Step.phase": [(JobEvent.data, "")],
    "Step.error": [(JobEvent.reason, ""), (JobEvent.data, "")],
    "Start.argv": [(JobAttempt.argv, "")],
    "Complete.output": [(JobAttempt.output_tail, "")],
    "Fail.error": [(Job.last_error, ""), (JobAttempt.error, "")],
    "Fail.output": [(JobAttempt.output_tail, "")],
    "Stopped.output": [(JobAttempt.output_tail, "")],
    "ReasonBody.reason": [(JobEvent.reason, "")],
    "BulkAction.reason": [(JobEvent.reason, "")],
    "CreateWebhook.url": [(WebhookEndpoint.url, "")],
    "CreateAlertRule.subject": [(AlertRule.subject, ""), (Alert.subject, "")],
    "CreateJob.queue": [(Job.queue, ""), (Queue.name, ""), (QueueEvent.queue, ""), (QueueStart.queue, "")],
    "CreateJob.concurrency_key": [(Job.concurrency_key, "")],
    "CreateJob.unique_key": [(Job.unique_key, "")],
    "PauseBody.reason": [(QueueEvent.reason, "")],
    "QueueLimits.reason": [(QueueEvent.reason, "")],
    "ScheduleSettings.cron": [(Schedule.cron, "")],
    "ScheduleSettings.timezone": [(Schedule.timezone, "")],
    "ScheduleSettings.type": [(Schedule.type, ""), (Job.type, ""), (JobRollup.type, "")],
    "ScheduleSettings.queue": [(Schedule.queue, ""), (Job.queue, "")],
    "CreateSchedule.name": [(Schedule.name, ""), (Job.schedule, "")],
    "Log.text": [(JobLogChunk.text, "")],
    "CreateToken.name": [(ApiToken.name, "")],
}
# Fields that are compared or searched for, never stored: any limit holds, but there must be one.
NOT_STORED = {
    "Lease.lease_token",  # compared with the job's own
    "Claim.types",
    "JobQuery.type",
    "JobQuery.worker",
    "JobQuery.q",
    "JobQuery.schedule",
    "JobQuery.queue",
    "Claim.queues",
    "WorkerPresence.worker_id",  # the worker whose connection is watched: compared with the registry's
    "WorkerGoodbye.worker_id",
    "ListQuery.cursor",
    "CreateToken.user",  # the owner, looked up by name
}
# String columns no API field writes: the server fills them from its own vocabulary.
SERVER_WRITTEN = {
    "alert_rules.kind",  # a rule kind (RuleKind)
    "alerts.state",  # firing or resolved
    "alerts.rule_change",  # RULE_REMOVED or RULE_DISABLED (webapp.domain.alerts)
    "queue_samples.subject",  # a queue, type: + a type, or * (copied from jobs)
    "job_wait_rollups.type",  # copied from jobs
    "job_wait_rollups.queue",
    "job_wait_rollups.status",
    "schedules.misfire",  # a policy name (MisfirePolicy)
    "schedules.overlap",  # a policy name (OverlapPolicy)
    "schedules.source",  # code or api
    "schedule_events.kind",
    "schedule_events.actor",
    "schedule_events.message",  # the server's sentence about a decision
    "queue_events.actor",
    "queue_events.action",  # pause, resume or set
    "jobs.status",
    "jobs.lease_token",
    "job_events.kind",
    "job_events.action",
    "job_events.from_status",
    "job_events.to_status",
    "job_attempts.outcome",
    "workers.state",
    "monitor_passes.instance",
    "monitor_passes.trigger",
    "job_rollups.status",
    "webhook_endpoints.format",
    "webhook_endpoints.secret",
    "webhook_subscriptions.event",
    "webhook_notifications.event_id",
    "webhook_notifications.type",
    "webhook_deliveries.outcome",
    # identity: names checked by webapp.jobs.users (1–200, by the CLI or the provider's claim),
    # the provider's subject (OpenID Connect caps it at 255), hashes and roles the server makes,
    # audit texts cut to their columns by webapp.jobs.audit
    "users.name",
    "users.role",
    "users.password_hash",
    "users.oidc_subject",
    "api_tokens.role",
    "api_tokens.secret_hash",
    "audit_entries.actor",
    "audit_entries.via",
    "audit_entries.action",
    "audit_entries.target",
    "audit_entries.address",
    "audit_entries.outcome",
}


def input_schemas() -> list[type[schemas.Body]]:
    found = {
        model
        for module in (
            bodies,
            worker_schemas,
            webhook_schemas,
            schedule_schemas,
            queues,
            alert_schemas,
            identity_schemas,
        )
        for _, model in inspect.getmembers(module, inspect.isclass)
        if issubclass(model, schemas.Body) and model is not schemas.Body
    }
    return sorted(found, key=lambda model: model.__name__)


def declared_by(model: type, field: str) -> str:
    owner = next(cls for cls in reversed(model.__mro__) if field in getattr(cls, "__annotations__", {}))
    return f"{owner.__name__}.{field}"


def free_strings(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The free-text string schemas in a property (not enums, constants or times, which are parsed
    and stored as times, never as text; nested models are walked on their own)."""
    if "$ref" in schema or "enum" in schema or "const" in schema or schema.get("format") == "date-time":
        return []
    found = [schema] if schema.get("type") == "string" else []
    for alternative in schema.get("anyOf", []):
        found += free_strings(alternative)
    if "items" in schema:
        found += free_strings(schema["items"])
    return found


def string_fields() -> dict[str, list[int | None]]:
    """Each declared string field (`Class.field`) → the maxLength of each of its string schemas."""
    fields: dict[str, list[int | None]] = {}
    for model in input_schemas():
        for name, prop in model.model_json_schema().get("properties", {}).items():
            strings = free_strings(prop)
            if strings:
                fields[declared_by(model, name)] = [string.get("maxLength") for string in strings]
    return fields


def room(column: Any, prefix: str) -> int | None:
    column_type = column.property.columns[0].type
    if isinstance(column_type, String) and column_type.length is not None:
        return column_type.length - len(prefix)
    return UNBOUNDED


def test_every_string_field_has_a_limit_that_fits_every_column_it_lands_in():
    fields = string_fields()
    assert "Claim.worker_id" in fields and "Step.name" in fields  # the walk sees the schemas
    unplaced = sorted(set(fields) - set(LANDS_IN) - NOT_STORED)
    assert not unplaced, f"say where these land (LANDS_IN) or that they are not stored (NOT_STORED): {unplaced}"
    assert not set(LANDS_IN) - set(fields), "LANDS_IN names a field the schemas no longer have"
    for field, limits in fields.items():
        assert all(limit is not None for limit in limits), f"{field} has no maxLength"
        for column, prefix in LANDS_IN.get(field, []):
            space = room(column, prefix)
            assert space is UNBOUNDED or max(limits) <= space, f"{field} allows {max(limits)}, {column} holds {space}"


def test_every_string_column_is_written_by_a_field_or_by_the_server_and_has_a_length():
    fed = {f"{column.class_.__tablename__}.{column.key}" for landings in LANDS_IN.values() for column, _ in landings}
    for table in Model.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, String) and type(column.type) is String:
                name = f"{table.name}.{column.name}"
                assert column.type.length is not None, f"{name} has no length"
                assert name in fed | SERVER_WRITTEN, (
                    f"say which field writes {name} (LANDS_IN) or add it to SERVER_WRITTEN"
                )


@pytest.fixture
def queued_job(client) -> int:
    return client.post("/api/jobs", json={"type": "long-worker"}).get_json()["id"]


def test_a_worker_id_one_longer_than_the_actor_holds_is_a_400_naming_it(client, queued_job):
    response = client.post("/api/internal/jobs/claim", json={"worker_id": "w" * (WORKER_ID_MAX + 1)}, headers=KEY)

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["field"] == "worker_id"
    assert client.get(f"/api/jobs/{queued_job}").get_json()["status"] == "queued"


def test_the_longest_worker_id_claims_and_reports_into_every_column(app, client, queued_job):
    worker = "w" * WORKER_ID_MAX
    claimed = client.post("/api/internal/jobs/claim", json={"worker_id": worker}, headers=KEY)
    assert claimed.status_code == 200, claimed.get_data(as_text=True)
    token = claimed.get_json()["jobs"][0]["lease_token"]

    step = client.post(
        f"/api/internal/jobs/{queued_job}/steps",
        json={"lease_token": token, "name": "s" * 200, "event": "started"},
        headers=KEY,
    )
    registered = client.post(
        "/api/internal/workers/heartbeat", json={"worker_id": worker, "hostname": "h" * 255}, headers=KEY
    )

    assert step.status_code == 200, step.get_data(as_text=True)
    assert registered.status_code == 200, registered.get_data(as_text=True)
    actors = db.session.scalars(select(JobEvent.actor).where(JobEvent.kind == "step")).all()
    assert actors == [WORKER_PREFIX + worker]
