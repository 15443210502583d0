"""/health in a real browser at 1280 px after a worker is killed with kill -9: the
summary does not say healthy, the worker reads dead, and its state and last heartbeat
are on screen without scrolling the table sideways."""

from __future__ import annotations

import os
import signal

from playwright.sync_api import Page, expect

from webapp import jobs

from tests.support.worker_process import start_worker, stop_worker

ORPHANED_MS = 20_000  # the heartbeat timeout (e2e/conftest.py) and a monitor pass, with slack
DEMO_TYPES = "demo.noop,demo.sleep,demo.pipeline,demo.train,demo.flaky,demo.crash,demo.hang,demo.command_sleep"
WIDTH = 1280


def test_a_killed_worker_reads_dead_with_its_last_heartbeat_on_screen_at_1280_px(page: Page, server, tmp_path):
    page.set_viewport_size({"width": WIDTH, "height": 800})
    job = jobs.create_job(type="demo.sleep", payload={"seconds": 120}, max_attempts=1)
    worker = start_worker(server.url, tmp_path / "worker.log", "w-killed-at-1280", "--types", DEMO_TYPES)
    try:
        page.goto("/health")
        row = page.locator('tr[data-worker-id="w-killed-at-1280"]')
        expect(row).to_contain_text(f"#{job.id}", timeout=ORPHANED_MS)  # running it
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        state = row.locator("[data-testid=worker-state]")
        expect(state).to_have_text("dead", timeout=ORPHANED_MS)
    finally:
        stop_worker(worker)

    expect(page.locator("[data-testid=health-summary]")).not_to_contain_text("Healthy")
    expect(page.locator("[data-testid=recent-story]")).to_contain_text("w-killed-at-1280 died")
    for cell in (state, row.locator("[data-testid=worker-heartbeat]")):
        box = cell.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, box
