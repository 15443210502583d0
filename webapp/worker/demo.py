"""Demo handlers, for trying Jobwarden out and for the tests:

    jobwarden worker --server http://127.0.0.1:5000 --handlers webapp.worker.demo

- ``demo.noop``: does nothing, returns ``{"ok": true}``.
- ``demo.sleep``: ``{"seconds": N}``, reports progress as it goes.
- ``demo.pipeline``: durable steps download → transcode → upload,
  ``{"seconds_per_step": N, "fail_step": a step that always fails,
  "fail_once_at": a step that fails on the job's first attempt only,
  "transcode_failures": tries of transcode that fail (retried in place, 2 retries)}``.
  Resume a failed one: the completed steps are replayed, not run again.
- ``demo.train``: ``{"epochs": N, "seconds_per_epoch": S, "fail_once_at_epoch": optional}``,
  checkpoints after each epoch; a later attempt resumes after the last checkpoint.
- ``demo.flaky``: fails its first attempt, succeeds after.
- ``demo.rate_limited``: its first attempt is refused by an "upstream" that says when to come
  back (``{"retry_after_s": N}``, default 300): the retry waits that long, not the backoff.
- ``demo.crash``: an external command that writes to stderr and exits 1.
- ``demo.hang``: an external command that ignores SIGTERM and sleeps.
- ``demo.command_sleep``: an external command sleeping ``{"seconds": N}``.
- ``demo.chatty``: writes a long log ``{"lines": N, "pause": S}`` — ``print``, ``logging``,
  ``ctx.log`` and stderr, some lines in ANSI colour — for the job page's live log.

And two schedules, declared in code: ``demo-tick`` (``demo.noop`` every 2 minutes) and
``demo-nightly-report`` (``demo.sleep`` every day at 02:30 Europe/Berlin).
"""

from __future__ import annotations

import sys

from .context import JobContext, JobFailed
from .handlers import Registry

registry = Registry()

PIPELINE_STEPS = ("download", "transcode", "upload")


@registry.handler("demo.noop")
def noop(ctx: JobContext) -> dict:
    return {"ok": True}


@registry.handler("demo.sleep")
def sleep(ctx: JobContext) -> dict:
    seconds = float((ctx.payload or {}).get("seconds", 5))
    ticks = max(1, int(seconds * 10))
    ctx.stage("sleeping")
    for tick in range(ticks):
        ctx.sleep(seconds / ticks)
        ctx.progress(100 * (tick + 1) / ticks)
    return {"slept": seconds}


@registry.handler("demo.pipeline")
def pipeline(ctx: JobContext) -> dict:
    payload = ctx.payload or {}
    seconds = float(payload.get("seconds_per_step", 1))
    transcode_failures = int(payload.get("transcode_failures", 0))
    tries = {"transcode": 0}

    def work(index: int, name: str, made: dict | None) -> dict:
        ctx.stage(name)
        ctx.log(f"{name}: started")
        ctx.sleep(seconds)
        if name == payload.get("fail_step") or (name == payload.get("fail_once_at") and ctx.attempt == 1):
            raise RuntimeError(f"{name} failed (asked to by the payload)")
        if name == "transcode":
            tries["transcode"] += 1
            if tries["transcode"] <= transcode_failures:
                raise RuntimeError(f"transcode: encoder crashed (try {tries['transcode']})")
        ctx.progress(100 * (index + 1) / len(PIPELINE_STEPS))
        ctx.log(f"{name}: done")
        return {"step": name, "input": made and made["output"], "output": f"video.{name}", "attempt": ctx.attempt}

    made = None
    for index, name in enumerate(PIPELINE_STEPS):
        made = ctx.step(name, work, index, name, made, retries=2 if name == "transcode" else 0)
    return {"steps": list(PIPELINE_STEPS), "output": made["output"] if made else None}


@registry.handler("demo.train")
def train(ctx: JobContext) -> dict:
    payload = ctx.payload or {}
    epochs = int(payload.get("epochs", 10))
    seconds = float(payload.get("seconds_per_epoch", 1))
    last = ctx.last_checkpoint or {"epoch": 0, "loss": 1.0}
    if ctx.last_checkpoint:
        ctx.log(f"resuming after epoch {last['epoch']} (loss {last['loss']})")
    loss = float(last["loss"])
    ctx.stage("training")
    for epoch in range(int(last["epoch"]) + 1, epochs + 1):
        ctx.sleep(seconds)
        if epoch == payload.get("fail_once_at_epoch") and ctx.attempt == 1:
            raise RuntimeError(f"out of memory in epoch {epoch} (asked to by the payload)")
        loss = round(loss * 0.8, 4)
        ctx.checkpoint({"epoch": epoch, "loss": loss})
        ctx.progress(100 * epoch / epochs)
        ctx.log(f"epoch {epoch}: loss {loss}")
    return {"epochs": epochs, "loss": loss, "resumed_after": int(last["epoch"])}


@registry.handler("demo.chatty")
def chatty(ctx: JobContext) -> dict:
    import logging

    logger = logging.getLogger("demo.chatty")
    lines = int(ctx.payload.get("lines", 200))
    for number in range(1, lines + 1):
        if number % 10 == 0:
            logger.info("checkpoint %d of %d", number, lines)
        elif number % 7 == 0:
            print(f"warning: item {number} took a slow path", file=sys.stderr)
        elif number % 5 == 0:
            ctx.log(f"\x1b[32mok\x1b[0m item {number}")
        else:
            print(f"processing item {number} of {lines}")
        ctx.progress(100 * number / lines)
        ctx.sleep(float(ctx.payload.get("pause", 0.1)))
    return {"lines": lines}


@registry.handler("demo.flaky")
def flaky(ctx: JobContext) -> dict:
    if ctx.attempt == 1:
        raise RuntimeError("flaky: the first attempt always fails")
    return {"attempt": ctx.attempt}


@registry.handler("demo.rate_limited")
def rate_limited(ctx: JobContext) -> dict:
    if ctx.attempt == 1:
        retry_after = float(ctx.payload.get("retry_after_s", 300))
        raise JobFailed(
            f"429 Too Many Requests: the upstream asks to retry after {retry_after:g} s", retry_in_s=retry_after
        )
    return {"attempt": ctx.attempt}


registry.command(
    "demo.crash",
    [sys.executable, "-c", "import sys; print('starting'); sys.stderr.write('crash: something broke\\n'); sys.exit(1)"],
)

registry.command(
    "demo.hang",
    [
        sys.executable,
        "-c",
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('hanging, ignoring SIGTERM; pid', os.getpid(), flush=True)\n"
        "while True: time.sleep(1)\n",
    ],
)

registry.command(
    "demo.command_sleep",
    [
        sys.executable,
        "-c",
        "import os, sys, time; print('sleeping; pid', os.getpid(), flush=True); time.sleep(float(sys.argv[1]))",
        "{seconds}",
    ],
)

# Sample schedules, declared in code: synced to the server when this worker starts (`make run`).
registry.schedule("demo-tick", every_s=120, type="demo.noop", overlap="skip")
registry.schedule(
    "demo-nightly-report", cron="30 2 * * *", timezone="Europe/Berlin", type="demo.sleep", payload={"seconds": 3}
)
