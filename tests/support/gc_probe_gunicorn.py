"""gunicorn settings for tests/test_served_gc.py: the package's own, unchanged, plus two hooks
the package does not use that write down how many objects the garbage collector holds frozen,
one file per process in JOBWARDEN_TEST_GC_PROBE_DIR: in the master as it is about to fork a
worker (`pre_fork`), and in a worker as it begins a request (`pre_request`)."""

import gc
import os
from pathlib import Path

from webapp.server.gunicorn_config import *  # noqa: F403  (the settings under test)


def _write_down(role):
    probe_dir = Path(os.environ["JOBWARDEN_TEST_GC_PROBE_DIR"])
    (probe_dir / f"{role}-{os.getpid()}").write_text(str(gc.get_freeze_count()))


def pre_fork(server, worker):
    _write_down("master")


def pre_request(worker, req):
    _write_down("worker")
