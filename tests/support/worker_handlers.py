"""Handlers the worker tests need beyond the demo ones (`--handlers tests.support.worker_handlers`)."""

from __future__ import annotations

import os
import sys
import time

from webapp.worker import JobContext, JobFailed, Registry

registry = Registry()

# Starts a grandchild, prints both pids, sleeps: for "no grandchild survives".
registry.command(
    "test.family",
    [
        sys.executable,
        "-c",
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print('pid', os.getpid(), flush=True)\n"
        "print('grandchild', child.pid, flush=True)\n"
        "time.sleep(120)\n",
    ],
)


@registry.handler("test.step_sleep")
def step_sleep(ctx: JobContext) -> dict:
    """One step that sleeps (cooperatively) for payload["seconds"]."""
    with ctx.step("upload"):
        ctx.log("uploading")
        ctx.sleep(float(ctx.payload["seconds"]))
    return {"uploaded": True}


@registry.handler("test.step_stage")
def step_stage(ctx: JobContext) -> dict:
    """Inside a step, sets the stage from the payload (which the server may refuse), then works on."""
    with ctx.step("publish"):
        ctx.stage(ctx.payload["stage"])
        ctx.sleep(float(ctx.payload.get("seconds", 5)))
    return {"published": True}


@registry.handler("test.sleeps_then_fails")
def sleeps_then_fails(ctx: JobContext) -> dict:
    """Its first attempt sleeps (cooperatively) for payload["seconds"]; every later one fails."""
    if ctx.attempt == 1:
        ctx.sleep(float(ctx.payload["seconds"]))
    raise RuntimeError(f"attempt {ctx.attempt} failed")


@registry.handler("test.rate_limited")
def rate_limited(ctx: JobContext) -> dict:
    """Its first attempt is told to come back later (an upstream's 429 with Retry-After:
    payload["retry_in_s"]); a later one succeeds."""
    if ctx.attempt == 1:
        raise JobFailed("429 Too Many Requests from upstream", retry_in_s=float(ctx.payload["retry_in_s"]))
    return {"attempt": ctx.attempt}


@registry.handler("test.stubborn")
def stubborn(ctx: JobContext) -> dict:
    """Never looks at the context while it works: stop requests go unnoticed."""
    with ctx.step("grind"):
        time.sleep(float(ctx.payload["seconds"]))
    return {"ground": True}


# The command and its grandchild both ignore SIGTERM and carry the payload's
# marker on their command lines, so a test can find every process of the job.
registry.command(
    "test.stubborn_family",
    [
        sys.executable,
        "-c",
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)', sys.argv[1]])\n"
        "print('grandchild', child.pid, flush=True)\n"
        "time.sleep(600)\n",
        "{marker}",
    ],
)

# Exits at once, leaving a grandchild that ends a moment later: in a container
# whose PID 1 is the worker, the grandchild would become the worker's zombie.
registry.command(
    "test.short_orphan",
    [
        sys.executable,
        "-c",
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.5)', sys.argv[1]])\n",
        "{marker}",
    ],
)

# Creates the file the payload names: for "a payload never adds arguments".
registry.command(
    "test.touch",
    [
        sys.executable,
        "-c",
        "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()",
        "{file}",
    ],
)

# Prints the arguments the payload filled in: for the argv the job page shows.
registry.command(
    "test.echo_args",
    [sys.executable, "-c", "import sys; print(sys.argv[1:])", "--label={label}", "{text}"],
)


# --- durable steps: each handler appends what it ran to payload["counter"], a file the test reads ---


def _count(ctx: JobContext, entry: str) -> None:
    with open(ctx.payload["counter"], "a") as counter:
        counter.write(f"{entry}\n")


def _fails_while_flagged(ctx: JobContext, name: str) -> dict:
    _count(ctx, name)
    flag = ctx.payload.get("fail_flag")
    if flag and os.path.exists(flag):
        raise RuntimeError(f"{name} failed (the flag file is there)")
    if ctx.attempt <= ctx.payload.get("fail_attempts", 0):
        raise RuntimeError(f"{name} failed (attempt {ctx.attempt})")
    return {"step": name, "attempt": ctx.attempt}


@registry.handler("test.durable_pipeline")
def durable_pipeline(ctx: JobContext) -> dict:
    """fetch → convert → publish as durable steps; publish fails while payload["fail_flag"] exists
    and in the first payload["fail_attempts"] attempts."""
    fetched = ctx.step("fetch", _count_and_return, ctx, "fetch")
    converted = ctx.step("convert", _count_and_return, ctx, "convert")
    published = ctx.step("publish", _fails_while_flagged, ctx, "publish")
    return {"fetch": fetched, "convert": converted, "publish": published}


def _count_and_return(ctx: JobContext, name: str) -> dict:
    _count(ctx, name)
    return {"step": name, "attempt": ctx.attempt}


@registry.handler("test.step_retries")
def step_retries(ctx: JobContext) -> dict:
    """A durable step whose first payload["failures"] tries raise, with payload["retries"] retries."""

    def fetch() -> int:
        _count(ctx, "fetch")
        with open(ctx.payload["counter"]) as counter:
            tries = len(counter.read().splitlines())
        if tries <= ctx.payload["failures"]:
            raise ConnectionError(f"try {tries}: the remote end hung up")
        return tries

    return {"tries": ctx.step("fetch", fetch, retries=ctx.payload["retries"])}


@registry.handler("test.train")
def train(ctx: JobContext) -> dict:
    """payload["epochs"] epochs of payload["seconds"] each, checkpointing after each; resumes from the last one."""
    start = (ctx.last_checkpoint or {"epoch": 0})["epoch"]
    for epoch in range(start + 1, ctx.payload["epochs"] + 1):
        with ctx.step(f"epoch {epoch}"):
            _count(ctx, f"epoch {epoch}")
            ctx.sleep(float(ctx.payload["seconds"]))
            ctx.checkpoint({"epoch": epoch})
    return {"resumed_after": start, "epochs": ctx.payload["epochs"]}


@registry.handler("test.big_result")
def big_result(ctx: JobContext) -> str:
    """A durable step whose result is payload["bytes"] long."""
    return ctx.step("render", lambda: "x" * ctx.payload["bytes"])


@registry.handler("test.unrecorded")
def unrecorded(ctx: JobContext) -> str:
    """A durable step that sleeps payload["seconds"] (the test stops the server meanwhile)."""

    def work() -> str:
        _count(ctx, "work")
        time.sleep(float(ctx.payload["seconds"]))
        return "done"

    return ctx.step("work", work)


# Logs (tests/test_logs.py): a flood, interleaved streams, a handler that writes every way.
registry.command(
    "test.log_flood",
    [
        sys.executable,
        "-c",
        "import sys\n"
        "n = int(sys.argv[1])\n"
        "out = sys.stdout\n"
        "for i in range(n):\n"
        "    out.write('line %07d ' % i + 'x' * 60 + '\\n')\n"
        "out.flush()\n",
        "{lines}",
    ],
)
registry.command(
    "test.log_interleaved",
    [
        sys.executable,
        "-c",
        "import sys, time\n"
        "for i in range(6):\n"
        "    stream = sys.stdout if i % 2 == 0 else sys.stderr\n"
        "    print('%s %d' % (stream.name[4:-1], i), file=stream, flush=True)\n"
        "    time.sleep(0.1)\n",
    ],
)
registry.command(
    "test.log_slow",
    [
        sys.executable,
        "-c",
        "import sys, time\n"
        "for i in range(int(sys.argv[1])):\n"
        "    print('tick %d' % i, flush=True)\n"
        "    time.sleep(float(sys.argv[2]))\n",
        "{lines}",
        "{pause}",
    ],
)


@registry.handler("test.log_python")
def log_python(ctx: JobContext) -> dict:
    """Prints, logs and ctx.logs lines naming its job, slowly, so two of these overlap in one worker."""
    import logging

    name = ctx.payload["name"]
    logger = logging.getLogger("tests.handler")
    for i in range(int(ctx.payload.get("lines", 5))):
        print(f"print {name} {i}")
        logger.warning("logging %s %d", name, i)
        ctx.log(f"ctx {name} {i}")
        print(f"stderr {name} {i}", file=sys.stderr)
        ctx.sleep(float(ctx.payload.get("pause", 0.05)))
    if ctx.payload.get("fail_first") and ctx.attempt == 1:
        raise RuntimeError(f"attempt 1 of {name} fails")
    return {"name": name}
