"""a limited queue's claim turn

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 20:20:00

- queues.claim_turn (default 0): a counter every limited claim of the queue moves on, so a
  claim can count a limited queue in its own snapshot and claim in the same statement,
  without a locking statement before it, when the turn it read is still the queue's
  (webapp/store/flow.py).
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('queues', sa.Column('claim_turn', sa.BigInteger(), nullable=False, server_default='0'))


def downgrade():
    op.drop_column('queues', 'claim_turn')
