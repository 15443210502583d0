"""The benchmarks run from a copy of Jobwarden that has no test suite: they import only
webapp and their own helpers (benchmarks/_support.py), never tests/ (issue 22)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks._support import postgres_database

from tests.support.server import PROJECT_ROOT

pytestmark = pytest.mark.slow

# Scripts run inside their own virtualenvs (procrastinate's, rq-dashboard's), not Jobwarden's.
OTHER_SIDES = {"procrastinate_side.py", "rq_dashboard_side.py"}
# Not benchmarks: what a benchmark and its test share (a worker's handlers, a command, request bodies).
SHARED = {"chaos_handlers.py", "flock_handlers.py", "flock_job.py", "hostile_shapes.py", "log_handlers.py"}
SCRIPTS = sorted(
    path.name
    for path in (PROJECT_ROOT / "benchmarks").glob("*.py")
    if not path.name.startswith("_") and path.name not in OTHER_SIDES | SHARED
)


@pytest.fixture(scope="module")
def copy_without_tests(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("no-tests") / "jobwarden"
    root.mkdir()
    for name in ("webapp", "benchmarks", "migrations", "templates", "static"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", ".venv*"))
    return root


def run_in(copy: Path, *argv: str) -> subprocess.CompletedProcess:
    # -E -s: no PYTHONPATH, no user site; the checkout is not on sys.path, the copy's scripts put the copy there.
    return subprocess.run(
        [sys.executable, "-E", "-s", *argv],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )


USE_NO_DATABASE = {"containment.py", "worker_import.py"}


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_starts_without_the_test_suite(copy_without_tests, script):
    done = run_in(copy_without_tests, f"benchmarks/{script}", "--help")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--database-prefix" in done.stdout or script in USE_NO_DATABASE


@pytest.mark.parametrize("module", sorted(name.removesuffix(".py") for name in SHARED))
def test_what_the_benchmarks_share_with_the_tests_loads_without_the_test_suite(copy_without_tests, module):
    done = run_in(copy_without_tests, "-c", f"import sys; sys.path.insert(0, '.'); import benchmarks.{module}")
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_benchmarks_postgresql_database_is_named_by_its_prefix_and_dropped_after(postgres_url):
    server = make_url(postgres_url)
    with postgres_database(postgres_url, prefix="jw_prefix_check") as url:
        name = make_url(url).database
        assert name.startswith("jw_prefix_check_")
        engine = create_engine(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_database()")).scalar_one() == name
        engine.dispose()
    admin = create_engine(server)
    with admin.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}).scalar_one()
            == 0
        )
    admin.dispose()
