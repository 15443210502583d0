"""Browser tests: real Chromium (Playwright) against a real gunicorn server on
loopback, on the same fresh database as the `app` fixture of tests/conftest.py
(SQLite always, PostgreSQL too when JOBWARDEN_TEST_POSTGRES_URL is set).

One browser per session, a fresh context per test. A failing test leaves a
screenshot and the page's HTML in e2e/artifacts/, and its report carries the page's
text and the tails of the server's and workers' logs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

# The same database fixtures as tests/ (imported, so each test gets a fresh database per backend).
from tests.conftest import INTERNAL_KEY, app, app_config, database_url, postgres_url  # noqa: F401
from tests.support.server import Server, running_server
from tests.support.worker_process import launch_worker

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PAGE_TEXT_CHARS = 4_000  # of a failing test's page, in its report
LOG_TAIL_CHARS = 6_000  # of each server and worker log of a failing test, in its report
CHROMIUM = os.environ.get("JOBWARDEN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The dashboard polls every 2 s; a change must show within one poll, plus the round trip.
ONE_POLL_MS = 4_000
# Monitor settings for the server: a silent worker's job is orphaned within about 11 s. The
# timeout is also each job's lease: a worker whose renewals go unanswered stops its job well
# before the lease ends (after 2.6 s of a 4 s one, 8 s of 10), which a loaded CI machine's
# late answers can cause; the likely cause of a force-started job failing in stop 40's CI.
HEARTBEAT_TIMEOUT_S = 10
MONITOR_INTERVAL_S = 1

expect.set_options(timeout=ONE_POLL_MS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server_settings() -> dict[str, str]:
    """Environment of the server under test; a module may override this fixture."""
    return {
        "JOBWARDEN_MONITOR": "on",
        "JOBWARDEN_MONITOR_INTERVAL": str(MONITOR_INTERVAL_S),
        "JOBWARDEN_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        "JOBWARDEN_RETRY_BASE_S": "0.2",
        "JOBWARDEN_RETRY_MAX_S": "1",
    }


@pytest.fixture
def server(app, database_url, tmp_path, server_settings) -> Iterator[Server]:  # noqa: F811
    """A real gunicorn server on the test's fresh database (built by `app`)."""
    with running_server(database_url, tmp_path / "server.log", **server_settings) as running:
        yield running


@pytest.fixture
def page(browser, server) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    yield page
    context.close()


class WorkerProcess:
    """A `python -m webapp worker` in its own process group."""

    def __init__(self, worker_id: str, process: subprocess.Popen, log_path: Path):
        self.worker_id = worker_id
        self.process = process
        self.log_path = log_path

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and every command it runs."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        self.process.send_signal(signal.SIGTERM)  # a second TERM stops at once, killing its commands
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def start_worker(server, tmp_path) -> Iterator[Callable[[str], WorkerProcess]]:
    """Start real workers with the demo handlers; all are stopped when the test ends."""
    started: list[WorkerProcess] = []

    def start(worker_id: str) -> WorkerProcess:
        log_path = tmp_path / f"{worker_id}.log"
        options = ("--heartbeat-interval", "0.3", "--poll-interval", "0.2", "--grace", "1", "--worker-id", worker_id)
        process = launch_worker(server.url, log_path, *options, handlers=("webapp.worker.demo",))
        worker = WorkerProcess(worker_id, process, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep what a failing test left behind: the page (screenshot, HTML, text) and the logs."""
    report = yield
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if report.failed and page is not None and not page.is_closed():
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", item.name)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            (ARTIFACTS / f"{name}.html").write_text(page.content())
            # CI keeps no artifacts: what the page said (an attempt's error) goes in the report.
            report.sections.append(("page text", page.locator("body").inner_text()[-PAGE_TEXT_CHARS:]))
        except Exception as error:  # the page may be gone with the browser; keep the real failure
            report.sections.append(("e2e artifacts", f"could not save: {error!r}"))
    tmp_path = item.funcargs.get("tmp_path") if hasattr(item, "funcargs") else None
    if report.failed and report.when == "call" and tmp_path is not None:
        for log_path in sorted(Path(tmp_path).glob("*.log")):
            report.sections.append((log_path.name, log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]))
    return report
