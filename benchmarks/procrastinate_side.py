"""The procrastinate half of benchmarks/store.py, run by the benchmark's own virtualenv.

procrastinate is not a Jobwarden dependency: benchmarks/store.py installs it into
benchmarks/.venv-procrastinate and runs this file with that interpreter.

    python procrastinate_side.py prepare DSN JOBS   # apply the schema, defer JOBS no-op jobs
    python procrastinate_side.py work DSN           # print "ready", wait for a line on stdin,
                                                    # work until the queue is empty, print the
                                                    # monotonic clock at the end
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time

from procrastinate import App, PsycopgConnector

DEFER_CHUNK = 1000


def build(dsn: str) -> App:
    app = App(connector=PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    def noop() -> None:
        """The same no-op work the Jobwarden side runs."""

    return app


def prepare(dsn: str, count: int) -> None:
    app = build(dsn)
    with app.open():
        app.schema_manager.apply_schema()
        task = app.tasks["noop"]
        begun = time.monotonic()
        for offset in range(0, count, DEFER_CHUNK):
            task.batch_defer(*({} for _ in range(min(DEFER_CHUNK, count - offset))))
        print(time.monotonic() - begun, flush=True)


async def work(dsn: str) -> None:
    app = build(dsn)
    async with app.open_async():
        await app.check_connection_async()  # connected before the clock starts, as on the Jobwarden side
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        # One job at a time per process (its default); exit once nothing is left to fetch.
        await app.run_worker_async(wait=False, concurrency=1, install_signal_handlers=False)
        print(time.monotonic(), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)  # "app in __main__": intended here
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], int(sys.argv[3]))
    else:
        asyncio.run(work(sys.argv[2]))
