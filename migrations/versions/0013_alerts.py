"""alerts and history: alert rules (with the defaults), alerts, queue depth samples, wait-time rollups

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-10 00:00:00

"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from webapp.domain.alerts import DEFAULT_RULES

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
FIRING = "state = 'firing'"


def upgrade():
    rules = op.create_table('alert_rules',
    sa.Column('id', ID, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=210), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('window_s', sa.Integer(), nullable=False),
    sa.Column('min_jobs', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('alerts',
    sa.Column('id', ID, nullable=False),
    sa.Column('rule_id', ID, nullable=False),
    sa.Column('subject', sa.String(length=210), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('since', sa.DateTime(), nullable=False),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('notified_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("state IN ('firing', 'resolved')", name='ck_alerts_state'),
    sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('uq_alerts_firing', 'alerts', ['rule_id', 'subject'], unique=True,
                    sqlite_where=sa.text(FIRING), postgresql_where=sa.text(FIRING))
    op.create_index('ix_alerts_rule', 'alerts', ['rule_id', 'id'])
    op.create_table('queue_samples',
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('subject', sa.String(length=210), nullable=False),
    sa.Column('queued', sa.BigInteger(), nullable=False),
    sa.Column('oldest_s', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('at', 'subject')
    )
    op.create_table('job_wait_rollups',
    sa.Column('hour', sa.DateTime(), nullable=False),
    sa.Column('type', sa.String(length=200), nullable=False),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('bucket', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('jobs', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'type', 'queue', 'status', 'bucket')
    )
    # A fresh install watches something from the start (webapp.domain.alerts.DEFAULT_RULES).
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(rules, [
        {'kind': rule.kind, 'subject': rule.subject, 'threshold': rule.threshold, 'window_s': rule.window_s,
         'min_jobs': rule.min_jobs, 'created_at': now}
        for rule in DEFAULT_RULES
    ])


def downgrade():
    op.drop_table('job_wait_rollups')
    op.drop_table('queue_samples')
    op.drop_index('ix_alerts_rule', table_name='alerts')
    op.drop_index('uq_alerts_firing', table_name='alerts')
    op.drop_table('alerts')
    op.drop_table('alert_rules')
