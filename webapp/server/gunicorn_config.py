"""Gunicorn settings for Jobwarden, carried inside the package so an installed wheel has
them: `jobwarden serve` passes `--config python:webapp.server.gunicorn_config` (the same works
with plain gunicorn).

The health monitor runs once per server, in the master, not once per worker:
`when_ready` builds one app in the master, and create_app starts the monitor
there (unless JOBWARDEN_MONITOR=off); `post_fork` tells each forked worker
that the master runs it. Without this file every worker would run its own
monitor: still correct — on PostgreSQL an advisory lock lets one pass run at a
time, and every change is a conditional transition — but wasteful.

Metrics: each gunicorn worker counts its own transitions and claims, so
prometheus-client's multiprocess mode keeps them in files under
PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory unless you set one) and
/metrics adds them up across the processes.

Frozen start-up objects: once the app is built, `gc.freeze()` (in the master before it forks,
in each worker once it has loaded the app) moves every object then alive, over 100,000, into
the collector's permanent generation. They live as long as the process anyway; unfrozen, each
full collection walks them all (tens of ms on this machine: a pause in whichever request
triggers it). Frozen in the master, the workers' collections also leave the pages they share
with it alone.
"""

import ctypes
import gc
import os
import shutil
import tempfile

# The application, so `gunicorn --config python:webapp.server.gunicorn_config` needs no argument.
wsgi_app = "webapp:create_app()"

# Threads serve the many short requests of polling dashboards and heartbeating
# workers; every worker's presence (webapp.server.presence) and every idle worker's waiting
# claim (long polls) each hold one thread —
# but no database connection — until a job comes: 2 × 256 threads keep the
# dashboard answering with 200 idle workers (even all on one process) and room to
# spare. Processes add CPU. Override with GUNICORN_WORKERS / GUNICORN_THREADS.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "webapp.server.gunicorn_worker.QuitSafelyThreadWorker"  # gthread, its quit without a deadlock
threads = int(os.environ.get("GUNICORN_THREADS", "256"))
graceful_timeout = 20
# No control socket (gunicorn >= 25.1, for `gunicornc`): its default place,
# $XDG_RUNTIME_DIR or ~/.gunicorn, is not writable for a service user (the image's
# logged "Control server error: Permission denied"), and Jobwarden does not use it.
# Set GUNICORN_CONTROL_SOCKET to a writable path to have one.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]

# glibc gives threads that allocate at the same moment malloc arenas of their own, up to 8 per
# core, and each keeps what it once held: a worker whose threads served ~100 waiting claims and
# then the pages held 96-98 MiB resident in 16 arenas, 91-92 MiB in 2. Python runs one thread at
# a time (the GIL), so two arenas are all its threads contend for. Set here, in the master before
# it forks, every worker inherits it; a MALLOC_ARENA_MAX in the environment still wins.
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def _limit_malloc_arenas() -> None:
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc's; None (or a no-op) elsewhere
    if mallopt is not None:
        mallopt(M_ARENA_MAX, MALLOC_ARENAS)


_limit_malloc_arenas()

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="jobwarden-metrics-")
    _metrics_dir_is_ours = True
else:
    _metrics_dir_is_ours = False


def when_ready(server):
    from webapp import create_app

    server.jobwarden_app = create_app()
    _freeze_what_lives()


def post_fork(server, worker):
    import sys

    # A master that runs no monitor never imported the scheduler; a worker need not either.
    scheduler = sys.modules.get("webapp.monitor.scheduler")
    if scheduler is not None:
        scheduler.after_fork()


def post_worker_init(worker):
    _freeze_what_lives()  # the worker's own app, loaded after the fork


def _freeze_what_lives():
    """Collect the garbage start-up left, then exempt the survivors from later collections."""
    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _metrics_dir_is_ours:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
