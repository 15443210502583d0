"""alert rules can be disabled

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 11:20:00

- alert_rules.enabled (default true): a disabled rule is kept but not evaluated, and has no
  firing alert (disabling one resolves them, as removing it does);
- alerts.rule_change: `disabled` (or `removed`) for an alert its rule's change resolved,
  so the history says so rather than "back to" a value that still breached.
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('alert_rules', sa.Column('enabled', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column('alerts', sa.Column('rule_change', sa.String(length=16), nullable=True))


def downgrade():
    op.drop_column('alerts', 'rule_change')
    op.drop_column('alert_rules', 'enabled')
