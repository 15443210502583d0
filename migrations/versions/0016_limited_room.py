"""limited room: the limited claim locks its queues and counts their room in one function its
statement calls, so a limited claim on PostgreSQL is one round trip (webapp/store/flow.py)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 08:20:00

"""
from alembic import op

from webapp.store.flow import LIMITED_ROOM_DDL, LIMITED_ROOM_FUNCTION

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(LIMITED_ROOM_DDL)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'DROP FUNCTION {LIMITED_ROOM_FUNCTION}(text[], text[], timestamp, bigint, bigint)')
