"""mark the database as Jobwarden's

Revision ID: 0002
Revises: 0001

SQLite: the header's application_id (webapp.store.integrity.APPLICATION_ID), so a
foreign file is told apart from ours before anything touches it. PostgreSQL
needs no change: there the mark is this alembic_version table and its revision.
"""
from alembic import op

from webapp.store.integrity import APPLICATION_ID

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA application_id = 0")
