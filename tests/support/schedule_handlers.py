"""Handler modules whose registries declare schedules (tests/test_schedule_declared.py).

`first` declares two schedules; `second`, loaded by a later worker, one of them changed and
the other no more."""

from __future__ import annotations

from webapp.worker.handlers import Registry

first = Registry()
first.handler("report")(lambda ctx: None)
first.schedule("nightly-report", cron="30 2 * * *", timezone="Europe/Berlin", type="report", payload={"full": True})
first.schedule("tick", every_s=3600, type="report")

second = Registry()
second.handler("report")(lambda ctx: None)
second.schedule("nightly-report", cron="45 2 * * *", timezone="Europe/Berlin", type="report")
