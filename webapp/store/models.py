"""The job store's tables, as SQLAlchemy 2 typed models.

Status is written only by `webapp.store.transitions`; everything else here is plain data.
Times are stored as naive UTC and handed back as aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.queues import DEFAULT_QUEUE
from ..domain.statuses import UNFINISHED
from .extensions import Model
from .status_sql import CANCELLED_HELD, ORPHANED_ATTEMPTS, QUEUED_LEASED, QUEUED_ONLY

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
Id = BigInteger().with_variant(Integer, "sqlite")
Json = JSON().with_variant(JSONB, "postgresql")


# The statuses a unique key is held in: a job not finished yet.
LIVE_UNIQUE_WHERE = "unique_key IS NOT NULL AND status IN ({})".format(
    ", ".join(f"'{status}'" for status in sorted(UNFINISHED))
)


class UTCDateTime(TypeDecorator):
    """Naive UTC in the database, aware UTC in Python, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _queued_in_claim_order(name: str, *leading: str) -> Index:
    """An index of the queued jobs in claim order (priority, then age) after `leading` columns:
    a claim, or a claim of one queue or one type, reads a range of it in the order it takes."""
    return Index(
        name, *leading, text("priority DESC"), "id", sqlite_where=text(QUEUED_ONLY), postgresql_where=text(QUEUED_ONLY)
    )


class Job(Model):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    type: Mapped[str] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(Json, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    timeout_s: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[float | None] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(200))
    current_step: Mapped[str | None] = mapped_column(String(200))
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Until when the attempt's worker (and its commands' supervisors) may run it unrenewed:
    # kept after the attempt ends until its worker confirms it stopped (webapp.store.leases).
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    result: Mapped[Any] = mapped_column(Json, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Flow control (webapp.store.flow): the queue whose limits hold the job, the key that
    # `key_concurrency` counts by, and the key a create is deduplicated by among live jobs.
    queue: Mapped[str] = mapped_column(String(200), nullable=False, default=DEFAULT_QUEUE, server_default=DEFAULT_QUEUE)
    concurrency_key: Mapped[str | None] = mapped_column(String(200))
    unique_key: Mapped[str | None] = mapped_column(String(200))
    # Set on a job a schedule made: the schedule's name and the fire time it ran for (webapp/schedules).
    schedule: Mapped[str | None] = mapped_column(String(200))
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'queued', 'claimed', 'running', 'completed', 'failed', 'cancelled')",
            name="ck_jobs_status",
        ),
        CheckConstraint("progress IS NULL OR (progress >= 0 AND progress <= 100)", name="ck_jobs_progress"),
        # The claim: queued jobs in priority order, then age.
        _queued_in_claim_order("ix_jobs_claim"),
        # The dashboard's filters and sort orders, each ending in id for keyset pages.
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_status_updated", "status", "updated_at", "id"),
        Index("ix_jobs_updated", "updated_at", "id"),
        Index("ix_jobs_created_id", "created_at", "id"),
        Index("ix_jobs_type_id", "type", "id"),
        Index("ix_jobs_worker_id", "worker_id", "id"),
        # The monitor's scans: live runs by heartbeat age, old pending, old finished. The
        # trailing columns are what the alert rules read of those rows (stalled: a running
        # job's type and start; failure_rate: a finished job's type and queue), so those
        # reads stay inside the index: no table row fetched per job. They cost no extra index
        # writes: a heartbeat or a finish rewrites these entries anyway.
        Index("ix_jobs_status_heartbeat", "status", "heartbeat_at", "type", "started_at"),
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_status_finished", "status", "finished_at", "type", "queue"),
        # Each queue's oldest ready job (queue_latency, /queues, /metrics): the first entry of the
        # queue's range (partial, so it holds only the queued jobs).
        Index(
            "ix_jobs_queued_ready",
            "status",
            "queue",
            "run_after",
            "type",
            sqlite_where=text(QUEUED_ONLY),
            postgresql_where=text(QUEUED_ONLY),
        ),
        # The queued jobs by type, in claim order within each: a claim of one type reads its
        # range, however many jobs of other types wait; and the queued types, one probe each
        # (a loose index scan): which of them no live worker takes (/health).
        _queued_in_claim_order("ix_jobs_queued_type", "type"),
        # A waiting claim's next look (next_claimable): by its end, the lease the queued jobs
        # requeued while an earlier attempt was stopping (or orphaned) kept; others have none.
        Index(
            "ix_jobs_queued_leases",
            "lease_expires_at",
            sqlite_where=text(QUEUED_LEASED),
            postgresql_where=text(QUEUED_LEASED),
        ),
        # The monitor's unconfirmed cancellations, every pass: the cancelled jobs a worker still
        # holds (a few), by heartbeat. Through the status's index a pass read every cancelled
        # job ever kept (7 ms at 20,000 of 1,000,000).
        Index(
            "ix_jobs_cancelled_held",
            "heartbeat_at",
            sqlite_where=text(CANCELLED_HELD),
            postgresql_where=text(CANCELLED_HELD),
        ),
        # schedule_failing of *: the schedules with a recent failure, from the scheduled jobs
        # alone (a few, where the status index would walk every failed job of the week).
        Index(
            "ix_jobs_scheduled_finished",
            "status",
            "finished_at",
            "schedule",
            sqlite_where=text("schedule IS NOT NULL"),
            postgresql_where=text("schedule IS NOT NULL"),
        ),
        # A schedule fires each time at most once, on any number of replicas: the store says no to a second.
        Index("uq_jobs_schedule_fire", "schedule", "scheduled_for", unique=True),
        # A schedule's runs, newest first (/jobs?schedule=NAME, its last runs, its overlap check).
        Index("ix_jobs_schedule_id", "schedule", "id"),
        # A limited queue's claim: its queued jobs in claim order, its live jobs counted per key.
        _queued_in_claim_order("ix_jobs_queue_claim", "queue"),
        Index("ix_jobs_queue_status_key", "queue", "status", "concurrency_key"),
        # Unique jobs: at most one live job per (type, unique_key); a create inserts with
        # ON CONFLICT DO NOTHING against this index and reads the holder only when refused.
        Index(
            "uq_jobs_live_unique_key",
            "type",
            "unique_key",
            unique=True,
            sqlite_where=text(LIVE_UNIQUE_WHERE),
            postgresql_where=text(LIVE_UNIQUE_WHERE),
        ),
        # `unique_for_s`: the finished jobs of a key, newest first.
        Index(
            "ix_jobs_unique_finished",
            "type",
            "unique_key",
            "finished_at",
            sqlite_where=text("unique_key IS NOT NULL"),
            postgresql_where=text("unique_key IS NOT NULL"),
        ),
    )


# A job as a statement of the state machine returned it (every column of `jobs`, read by name as
# a Job's attributes are), for the claims and a worker's batches of reports: loading Job objects
# (into the session's identity map, each attribute set through the ORM's instrumentation, then
# expunged or expired at the commit) cost the server more CPU than the statement itself.
# Not tracked by the session: what the statement moved, as it moved it.
JobRow: TypeAlias = Row[Any]


class JobEvent(Model):
    """Append-only history: status changes, step events and operator actions."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))  # status | step | note
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str | None] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    attempt: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any] = mapped_column(Json, nullable=True)
    # A step report's identity within its attempt (webapp.store.step_reports): recorded once.
    report_key: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_job_events_job", "job_id", "id"),
        Index(
            "uq_job_events_report",
            "job_id",
            "attempt",
            "report_key",
            unique=True,
            sqlite_where=text("report_key IS NOT NULL"),
            postgresql_where=text("report_key IS NOT NULL"),
        ),
    )


class JobAttempt(Model):
    """One row per claim of a job: who ran it, when, and how it ended."""

    __tablename__ = "job_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # completed | failed | retried | orphaned | interrupted | cancelled | marked_failed
    outcome: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[str | None] = mapped_column(String(200))
    output_tail: Mapped[str | None] = mapped_column(Text)
    argv: Mapped[Any] = mapped_column(Json, nullable=True)  # a command job's command line, as the worker ran it

    __table_args__ = (
        UniqueConstraint("job_id", "number", name="uq_job_attempts_number"),
        # /health's recent orphans (webapp.monitor.story): the orphaned attempts, by their end.
        Index(
            "ix_job_attempts_orphaned",
            "finished_at",
            sqlite_where=text(ORPHANED_ATTEMPTS),
            postgresql_where=text(ORPHANED_ATTEMPTS),
        ),
    )


class JobLogChunk(Model):
    """A piece of one attempt's log, as one report carried it (webapp.store.logs).

    `start` is its byte offset in the attempt's log; a piece sent twice is stored once.
    Pieces in the middle of a log over the cap are deleted: the beginning and end stay.
    """

    __tablename__ = "job_log_chunks"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("job_id", "attempt", "start", name="uq_job_log_chunks_start"),)


class Worker(Model):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    types: Mapped[Any] = mapped_column(Json, nullable=True)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16), default="alive")  # webapp.domain.worker_states

    __table_args__ = (Index("ix_workers_last_seen", "last_seen_at"),)


class MonitorPass(Model):
    """One health-monitor pass: when, how long, what it changed."""

    __tablename__ = "monitor_passes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    instance: Mapped[str | None] = mapped_column(String(255))
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")  # schedule | startup | manual
    changes: Mapped[Any] = mapped_column(Json, nullable=True)


class OperatorSessions(Model):
    """One row: the generation of dashboard logins. A login records it; logout bumps it,
    so every cookie issued before stops acting (a signed cookie alone cannot be revoked)."""

    __tablename__ = "operator_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class JobRollup(Model):
    """Finished jobs of one hour, type and status, counted and timed: /stats over days reads these."""

    __tablename__ = "job_rollups"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # the hour's start
    type: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    jobs: Mapped[int] = mapped_column(BigInteger)
    wait_us: Mapped[int | None] = mapped_column(BigInteger)  # created → claimed, over `waits` jobs
    waits: Mapped[int] = mapped_column(BigInteger)
    claimed_us: Mapped[int | None] = mapped_column(BigInteger)  # claimed → started, over `runs` jobs
    running_us: Mapped[int | None] = mapped_column(BigInteger)  # started → finished, over `runs` jobs
    runs: Mapped[int] = mapped_column(BigInteger)


class RollupProgress(Model):
    """One row: every hour before `rolled_up_to` is in job_rollups (no row: none is yet)."""

    __tablename__ = "rollup_progress"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    rolled_up_to: Mapped[datetime] = mapped_column(UTCDateTime)


class StepResult(Model):
    """A durable step's stored result: later attempts of the job return it instead of running the step."""

    __tablename__ = "job_step_results"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)  # the attempt that ran the step and produced the result
    result: Mapped[Any] = mapped_column(Json, nullable=True)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("job_id", "name", name="uq_job_step_results_name"),)


class Checkpoint(Model):
    """The newest checkpoint a job's handler stored: a later attempt resumes from its data."""

    __tablename__ = "job_checkpoints"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempt: Mapped[int] = mapped_column(Integer)
    step: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[Any] = mapped_column(Json, nullable=True)


# --- webhooks (webapp/webhooks) ----------------------------------------------------


class WebhookEndpoint(Model):
    """A receiver of notifications: where, which events, in which format, and whether it still answers."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16), default="standard")  # standard | slack
    secret: Mapped[str] = mapped_column(String(100))  # whsec_…, shown once
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(Text)


class WebhookSubscription(Model):
    """One event type an endpoint receives; the outbox's "is anyone listening" check joins this."""

    __tablename__ = "webhook_subscriptions"

    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True)
    event: Mapped[str] = mapped_column(String(40), primary_key=True)

    __table_args__ = (Index("ix_webhook_subscriptions_event", "event", "endpoint_id"),)


class WebhookNotification(Model):
    """The outbox: one row per event, written in the transaction that caused it."""

    __tablename__ = "webhook_notifications"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)  # the webhook-id, stable across retries
    type: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[int | None] = mapped_column(BigInteger)  # no foreign key: pruning a job keeps its history
    payload: Mapped[Any] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_webhook_notifications_created", "created_at"),)


class WebhookDelivery(Model):
    """One attempt to post a notification to an endpoint; `at` is NULL until it has been made.

    A pending row (at IS NULL) is due at `next_attempt_at`; a sender claims it by
    setting `locked_until`, so a sender killed mid-send leaves it to be sent again.
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    notification_id: Mapped[int] = mapped_column(ForeignKey("webhook_notifications.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(BigInteger)  # copied from the notification: per-job order
    attempt: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)  # at most 1 KB
    # delivered | retrying | gave_up | pending (at IS NULL)
    outcome: Mapped[str] = mapped_column(String(16), default="pending")

    __table_args__ = (
        # The sender's scan: due pending rows.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("at IS NULL"),
            postgresql_where=text("at IS NULL"),
        ),
        # Per-job order: is an earlier notification of this job still pending for this endpoint?
        Index(
            "ix_webhook_deliveries_pending_job",
            "endpoint_id",
            "job_id",
            "notification_id",
            sqlite_where=text("at IS NULL"),
            postgresql_where=text("at IS NULL"),
        ),
        # The delivery log, newest first.
        Index("ix_webhook_deliveries_log", "endpoint_id", "id"),
    )


# --- schedules (webapp/schedules) ---------------------------------------------------


class Schedule(Model):
    """A recurring job: when (`cron` in `timezone`, or every `every_s`), what (type, payload…), and policies.

    `next_fire_at` is the fire time owed; `due_at` is when a monitor looks at the schedule
    next: the same time, except while an `overlap="wait"` fire waits for the previous run.
    A fire moves both forward with a conditional UPDATE in the transaction that inserts
    its job, so of any number of replicas exactly one fires each time.
    """

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    cron: Mapped[str | None] = mapped_column(String(200))
    every_s: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    type: Mapped[str] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(Json, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(200), default="default")
    misfire: Mapped[str] = mapped_column(String(16))  # skip | run_once | all
    overlap: Mapped[str] = mapped_column(String(16))  # allow | skip | wait
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_fire_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(8))  # code | api
    missing_from_code: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("(cron IS NULL) <> (every_s IS NULL)", name="ck_schedules_cron_or_every"),
        # The monitor's one query per wake-up: the earliest due schedule that is not paused.
        Index(
            "ix_schedules_due",
            "due_at",
            sqlite_where=text("paused = 0"),
            postgresql_where=text("paused = false"),
        ),
    )


class ScheduleEvent(Model):
    """A schedule's history: every fire, skip, wait and operator change, said in words."""

    __tablename__ = "schedule_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))  # see webapp.jobs.schedules.EVENT_KINDS
    actor: Mapped[str] = mapped_column(String(200))
    fire_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    job_id: Mapped[int | None] = mapped_column(BigInteger)  # no foreign key: pruning a job keeps the history
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_schedule_events_schedule", "schedule_id", "id"),)


# --- queues and flow control (webapp.store.flow) -------------------------------------


class Queue(Model):
    """A queue's limits and pause, once an operator set them (a queue named only by its
    jobs has no row and no limit: its claims stay on the fast path)."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    concurrency: Mapped[int | None] = mapped_column(Integer)  # live jobs (claimed + running) at most
    key_concurrency: Mapped[int | None] = mapped_column(Integer)  # live jobs per concurrency_key at most
    rate_limit_count: Mapped[int | None] = mapped_column(Integer)  # starts in any window of the period at most
    rate_limit_period_s: Mapped[float | None] = mapped_column(Float)
    # Moves on with every limited claim and every change of the row: a claim that counted the
    # queue in its snapshot claims only if the turn is still the one it read (webapp.store.flow).
    claim_turn: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("concurrency IS NULL OR concurrency >= 0", name="ck_queues_concurrency"),
        CheckConstraint("key_concurrency IS NULL OR key_concurrency >= 1", name="ck_queues_key_concurrency"),
        CheckConstraint(
            "(rate_limit_count IS NULL) = (rate_limit_period_s IS NULL)"
            " AND (rate_limit_count IS NULL OR (rate_limit_count >= 1 AND rate_limit_period_s > 0))",
            name="ck_queues_rate_limit",
        ),
    )


class QueueStart(Model):
    """A rate-limited queue's claims, as microseconds since the epoch: the sliding window the
    claim counts (rows in (now - period, now]); older rows are pruned by the claim itself."""

    __tablename__ = "queue_starts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    queue: Mapped[str] = mapped_column(String(200))
    at_us: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_queue_starts_queue_at", "queue", "at_us"),)


class QueueEvent(Model):
    """A queue's history: pauses, resumes and limit changes, with who and why."""

    __tablename__ = "queue_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    queue: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))  # pause | resume | set
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any] = mapped_column(Json, nullable=True)

    __table_args__ = (Index("ix_queue_events_queue", "queue", "id"),)


class User(Model):
    """A person: a local account (argon2 password hash) or one signed in through OpenID
    Connect (`oidc_subject`). Disabling sets `disabled_at` and bumps `session_generation`,
    which every login cookie of the user carries, so their sessions stop acting at once."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # webapp.domain.roles.ROLE_NAMES
    password_hash: Mapped[str | None] = mapped_column(String(200))  # None: signs in through OIDC only
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Model):
    """An API token of a user: only the SHA-256 of the `jw_…` secret is kept (the secret is
    random and long, so a fast hash is enough), with a role no higher than the owner's."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Model):
    """One change made by a person or a token, or refused to them: who, when, from where,
    what, on what, why and how it ended. The app only ever inserts these rows."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_at", "at"), Index("ix_audit_entries_actor_at", "actor", "at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    via: Mapped[str] = mapped_column(String(64))  # session, oidc, basic, token:ID, password, cli, open
    action: Mapped[str] = mapped_column(String(200))
    target: Mapped[str | None] = mapped_column(String(400))
    reason: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(200))
    data: Mapped[Any] = mapped_column(Json, nullable=True)


# --- alerts and history (webapp.monitor.alerting, webapp.jobs.alert_rules, webapp.jobs.series) ---


class AlertRule(Model):
    """What the monitor watches: a kind (webapp.domain.alerts.RULE_KINDS) of a subject, and when it fires."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(210))  # a type, queue:NAME, queue or schedule name, or *
    threshold: Mapped[float] = mapped_column(Float)
    window_s: Mapped[int] = mapped_column(Integer, default=0)
    min_jobs: Mapped[int] = mapped_column(Integer, default=0)  # failure_rate: fewer finished jobs say nothing
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A disabled rule is kept but not evaluated, and has no firing alert (disabling resolves them).
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class Alert(Model):
    """One episode of a rule firing for one subject: firing from `since`, resolved at `resolved_at`.

    At most one firing alert per (rule, subject), held by the partial unique index, so of
    any number of monitor replicas exactly one inserts it (and notifies); the resolve and
    the re-notify are conditional UPDATEs that exactly one replica's statement matches.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(210))  # the concrete type, queue, schedule (or * for workers)
    state: Mapped[str] = mapped_column(String(16))  # firing | resolved
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float)  # the newest measure while firing, the last one once resolved
    threshold: Mapped[float] = mapped_column(Float)
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # While firing: since when the value has been below the threshold (None: it breaches).
    # It resolves once that lasts JOBWARDEN_ALERT_RESOLVE_AFTER_S, so a value wavering
    # about the threshold does not flap.
    clear_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Resolved by a change of its rule (`removed`, `disabled`), not by its value: what the
    # history says of it (None: the value went back below the threshold).
    rule_change: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        CheckConstraint("state IN ('firing', 'resolved')", name="ck_alerts_state"),
        Index(
            "uq_alerts_firing",
            "rule_id",
            "subject",
            unique=True,
            sqlite_where=text("state = 'firing'"),
            postgresql_where=text("state = 'firing'"),
        ),
        Index("ix_alerts_rule", "rule_id", "id"),
    )


class QueueSample(Model):
    """Queued jobs once a minute, sampled by the monitor: /stats charts them over days.

    `subject` is a queue's name, `type:NAME` for a type, or `*` for all (written every
    sample, so a minute with no row was a minute no monitor ran)."""

    __tablename__ = "queue_samples"

    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # the minute's start
    subject: Mapped[str] = mapped_column(String(210), primary_key=True)
    queued: Mapped[int] = mapped_column(BigInteger)
    oldest_s: Mapped[float | None] = mapped_column(Float)


class WaitRollup(Model):
    """Finished jobs of one hour, type, queue and status per queue-latency bucket
    (webapp.domain.wait_buckets): throughput, failure rate and latency percentiles per type or queue."""

    __tablename__ = "job_wait_rollups"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    type: Mapped[str] = mapped_column(String(200), primary_key=True)
    queue: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    jobs: Mapped[int] = mapped_column(BigInteger)
