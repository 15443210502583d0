"""schedules: recurring jobs, their history, and on jobs the schedule and fire time they ran for

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 00:00:00

"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "schedules",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("every_s", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("misfire", sa.String(length=16), nullable=False),
        sa.Column("overlap", sa.String(length=16), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_fire_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("missing_from_code", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("(cron IS NULL) <> (every_s IS NULL)", name="ck_schedules_cron_or_every"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index(
        "ix_schedules_due",
        "schedules",
        ["due_at"],
        unique=False,
        sqlite_where=sa.text("paused = 0"),
        postgresql_where=sa.text("paused = false"),
    )
    op.create_table(
        "schedule_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("schedule_id", ID, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("fire_time", sa.DateTime(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_schedule_events_schedule", "schedule_events", ["schedule_id", "id"], unique=False)
    # Plain ADD COLUMN and CREATE INDEX on both databases: no copy of the jobs table.
    op.add_column("jobs", sa.Column("queue", sa.String(length=200), server_default="default", nullable=False))
    op.add_column("jobs", sa.Column("schedule", sa.String(length=200), nullable=True))
    op.add_column("jobs", sa.Column("scheduled_for", sa.DateTime(), nullable=True))
    op.create_index("uq_jobs_schedule_fire", "jobs", ["schedule", "scheduled_for"], unique=True)
    op.create_index("ix_jobs_schedule_id", "jobs", ["schedule", "id"], unique=False)


def downgrade():
    op.drop_index("ix_jobs_schedule_id", table_name="jobs")
    op.drop_index("uq_jobs_schedule_fire", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("scheduled_for")
        batch_op.drop_column("schedule")
        batch_op.drop_column("queue")
    op.drop_index("ix_schedule_events_schedule", table_name="schedule_events")
    op.drop_table("schedule_events")
    op.drop_index("ix_schedules_due", table_name="schedules")
    op.drop_table("schedules")
