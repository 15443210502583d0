"""The procrastinate half of benchmarks/store.py and benchmarks/pickup.py, run by the
benchmark's own virtualenv.

procrastinate is not a Jobwarden dependency: benchmarks/store.py installs it into
benchmarks/.venv-procrastinate and runs this file with that interpreter.

    python procrastinate_side.py prepare DSN JOBS [KEYS]  # apply the schema, defer JOBS no-op jobs
                                                    # (with KEYS: each with lock key-(n % KEYS))
    python procrastinate_side.py work DSN           # print "ready", wait for a line on stdin,
                                                    # work until the queue is empty, print the
                                                    # monotonic clock at the end
    python procrastinate_side.py serve DSN          # apply the schema, print "ready", then run a
                                                    # default worker (LISTEN/NOTIFY) until killed
    python procrastinate_side.py pickup DSN JOBS FIRST_LOOK_S
                                                    # defer JOBS jobs one at a time, each once the
                                                    # last succeeded (first looked for FIRST_LOOK_S
                                                    # after the defer); print each one's pickup (s)
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


def prepare(dsn: str, count: int, keys: int = 0) -> None:
    app = build(dsn)
    with app.open():
        app.schema_manager.apply_schema()
        task = app.tasks["noop"]
        begun = time.monotonic()
        if keys:
            # A lock per job: one defer each, in key order round after round.
            for number in range(count):
                task.configure(lock=f"key-{number % keys}").defer()
        else:
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


async def serve(dsn: str) -> None:
    app = build(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        print("ready", flush=True)
        await app.run_worker_async(concurrency=1, install_signal_handlers=False)  # listen_notify by default


def pickup(dsn: str, count: int, first_look_s: float) -> None:
    """Pickup = the job's `started` event (the worker fetched it) minus the clock before the defer."""
    import psycopg

    app = build(dsn)
    with app.open(), psycopg.connect(dsn, autocommit=True) as connection:
        task = app.tasks["noop"]
        for _ in range(count):
            (before,) = connection.execute("SELECT clock_timestamp()").fetchone()
            job_id = task.defer()
            time.sleep(first_look_s)
            while True:
                row = connection.execute(
                    "SELECT e.at FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id "
                    "WHERE e.job_id = %s AND e.type = 'started' AND j.status = 'succeeded'",
                    (job_id,),
                ).fetchone()
                if row:
                    print((row[0] - before).total_seconds(), flush=True)
                    break
                time.sleep(0.002)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)  # "app in __main__": intended here
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    elif sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2]))
    elif sys.argv[1] == "pickup":
        pickup(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        asyncio.run(work(sys.argv[2]))
