"""The flow-control runs' handler: each run writes `job id,key,start,end` (its own clock,
time.time()) to a ledger file (JOBWARDEN_FLOW_LEDGER) once it has worked, so the ledger
says when jobs really ran, whatever the store says."""

from __future__ import annotations

import os
import time

from webapp.worker import JobContext, Registry

registry = Registry()


@registry.handler("flow.record")
def record_run(ctx: JobContext) -> None:
    started = time.time()
    payload = ctx.payload or {}
    time.sleep(float(payload.get("seconds", 0.02)))
    line = f"{ctx.job_id},{payload.get('key', '')},{started:.6f},{time.time():.6f}\n".encode()
    descriptor = os.open(os.environ["JOBWARDEN_FLOW_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)  # one small O_APPEND write: lines from many processes never interleave
    finally:
        os.close(descriptor)
