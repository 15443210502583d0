"""operator sessions: the login generation that logout bumps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 19:40:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    table = op.create_table('operator_sessions',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(table, [{'id': 1, 'generation': 0}])


def downgrade():
    op.drop_table('operator_sessions')
