"""schedules' next fire times, counted again as cron reads the day of week

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 18:45:00

Until this revision's code, a cron schedule's day of week was read as APScheduler 3 reads it,
0 as Monday: `0 9 * * 1`, described as "every Monday at 09:00", fired on Tuesdays, and a
restricted day of the month and day of the week both had to match. The next fire time stored
for such a schedule was counted that way; this counts it again from now, as a change of the
schedule's timing does. A schedule whose day of week is `*` had its times right and is left as
it is; a paused one is counted again when it is resumed.
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from webapp.domain.schedule_timing import BadTiming, Timing

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

SCHEDULES = sa.table(
    'schedules',
    sa.column('id', sa.BigInteger),
    sa.column('cron', sa.String),
    sa.column('timezone', sa.String),
    sa.column('paused', sa.Boolean),
    sa.column('next_fire_at', sa.DateTime),
    sa.column('due_at', sa.DateTime),
)


def upgrade():
    bind = op.get_bind()
    now = datetime.now(UTC)
    rows = bind.execute(
        sa.select(SCHEDULES.c.id, SCHEDULES.c.cron, SCHEDULES.c.timezone).where(
            SCHEDULES.c.cron.is_not(None), SCHEDULES.c.paused == sa.false()
        )
    ).all()
    for schedule_id, cron, zone in rows:
        fields = cron.split()
        if len(fields) != 5 or fields[4] == '*':
            continue
        try:
            fire = Timing(cron, None, zone, now).next_after(now)
        except BadTiming:
            continue  # no such row could be stored (it failed at create); left as it is if one were
        stored = fire.astimezone(UTC).replace(tzinfo=None)  # the store's times: naive UTC
        bind.execute(
            SCHEDULES.update().where(SCHEDULES.c.id == schedule_id).values(next_fire_at=stored, due_at=stored)
        )


def downgrade():
    pass  # the times counted here are the right ones under either revision's schema
