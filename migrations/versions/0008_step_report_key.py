"""step events carry their report's identity under a unique index, so a report sent
again is found by the index, not by reading every step event of the attempt

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 00:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# webapp.step_reports.report_key in SQL: "<event>/<step attempt or nothing>/<name>".
FIELD = {
    'postgresql': "(data ->> '{0}')",
    'sqlite': "json_extract(data, '$.{0}')",
}


def upgrade():
    op.add_column('job_events', sa.Column('report_key', sa.Text(), nullable=True))
    field = FIELD[op.get_bind().dialect.name].format
    key = f"{field('event')} || '/' || coalesce({field('step_attempt')}, '') || '/' || {field('name')}"
    # The earliest event of each report gets the key; a copy written by the old read-then-write
    # check under a race keeps none, so the unique index can be built.
    op.execute(
        f"UPDATE job_events SET report_key = {key} WHERE id IN ("
        f"SELECT min(id) FROM job_events WHERE kind = 'step' AND {field('name')} IS NOT NULL "
        f"GROUP BY job_id, attempt, {key})"
    )
    op.create_index(
        'uq_job_events_report',
        'job_events',
        ['job_id', 'attempt', 'report_key'],
        unique=True,
        sqlite_where=sa.text('report_key IS NOT NULL'),
        postgresql_where=sa.text('report_key IS NOT NULL'),
    )


def downgrade():
    op.drop_index('uq_job_events_report', table_name='job_events')
    op.drop_column('job_events', 'report_key')
