"""The dashboard during an incident, in a real browser, with real workers running
the demo handlers and the monitor on a short interval: watching a job live,
cancelling it, losing its worker, recovering it, and bulk actions."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from e2e.dialogs import confirm_in_page
from webapp import jobs
from webapp.store.extensions import db

from tests.factories import make_job
from tests.support.processes import alive
from tests.support.worker_process import wait_for

SLOW_MS = 30_000  # a worker claiming, a monitor pass, a process exiting: beyond one poll


def badge(page: Page):
    return page.locator("#job-region .summary .badge[data-status]")


def mark_page(page: Page) -> None:
    """Tag the window: the tag survives HTMX swaps and is lost by any reload."""
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def printed_pid(job_id: int, timeout: float = 20) -> int:
    """The pid the job's command printed, from the output its heartbeats carried to the store."""

    def found() -> re.Match | None:
        attempts = jobs.attempts_of(job_id)
        return re.search(r"pid (\d+)", (attempts[-1].output_tail or "") if attempts else "")

    return int(wait_for(found, timeout, f"job {job_id} to print its pid").group(1))


def test_a_running_jobs_progress_advances_without_a_reload(page: Page, start_worker):
    job = jobs.create_job(type="demo.sleep", payload={"seconds": 8})
    start_worker("e2e-live")
    page.goto(f"/jobs/{job.id}")
    mark_page(page)
    expect(badge(page)).to_have_attribute("data-status", "running", timeout=SLOW_MS)
    progress = page.locator("#job-region .summary progress")
    first = progress.get_attribute("value")
    expect(progress).not_to_have_attribute("value", first)  # a later poll brought a new value
    assert float(progress.get_attribute("value")) > float(first)
    expect(page.locator("#job-region .summary")).to_contain_text("sleeping")
    assert_not_reloaded(page)


def test_cancelling_a_running_job_turns_its_badge_cancelled_and_its_process_gone(page: Page, start_worker):
    job = jobs.create_job(type="demo.command_sleep", payload={"seconds": 120})
    start_worker("e2e-cancel")
    pid = printed_pid(job.id)
    assert alive(pid)
    page.goto(f"/jobs/{job.id}")
    expect(badge(page)).to_have_attribute("data-status", "running")
    mark_page(page)
    page.get_by_role("button", name="Cancel", exact=True).click()
    asked = confirm_in_page(page, "Cancel job")
    assert asked.startswith(f"Cancel job {job.id} (demo.command_sleep, running)?")
    assert "SIGTERM to its process group, then SIGKILL after the grace" in asked
    expect(badge(page)).to_have_attribute("data-status", "cancelled")
    expect(badge(page)).to_have_text("Cancelled")
    wait_for(lambda: not alive(pid), 15, f"the job's process {pid} to end with the cancel")
    assert_not_reloaded(page)


def test_dismissing_the_confirmation_changes_nothing(page: Page):
    job = make_job("queued")
    page.goto(f"/jobs/{job.id}")
    page.get_by_role("button", name="Mark as failed", exact=True).click()
    confirm_in_page(page, "Back")
    page.wait_for_timeout(500)  # room for a request that must not be sent
    db.session.rollback()
    assert jobs.get_job(job.id).status == "queued"
    expect(badge(page)).to_have_attribute("data-status", "queued")


def test_a_killed_workers_job_is_failed_by_the_monitor_then_force_started_to_completion(page: Page, start_worker):
    # Long enough that the kill lands while it runs even when the page sees `running` seconds
    # late (a loaded machine: at 3 s the job once completed first); short enough for the rescuer.
    job = jobs.create_job(type="demo.sleep", payload={"seconds": 10}, max_attempts=1)
    first = start_worker("e2e-doomed")
    page.goto(f"/jobs/{job.id}")
    expect(badge(page)).to_have_attribute("data-status", "running", timeout=SLOW_MS)
    mark_page(page)
    first.kill()

    expect(badge(page)).to_have_attribute("data-status", "failed", timeout=SLOW_MS)
    panel = page.locator("[data-testid=error-panel]")
    # The server saw the worker's connection drop; a kill before that request reached it
    # falls to the monitor's heartbeat cut-off instead.
    expect(panel).to_contain_text(
        re.compile(r"orphaned: (worker e2e-doomed died|no heartbeat from worker e2e-doomed since)")
    )

    start_worker("e2e-rescuer")
    page.get_by_role("button", name="Force start", exact=True).click()
    assert "one more attempt" in confirm_in_page(page, "Force start")
    expect(page.locator("#recovery-card")).to_contain_text("Force start: done.")
    expect(badge(page)).to_have_attribute("data-status", "completed", timeout=SLOW_MS)
    expect(page.locator("#job-region .summary")).to_contain_text("e2e-rescuer")
    attempts = page.locator("section[aria-labelledby=attempts-title] tbody tr")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("orphaned")
    expect(attempts.nth(1)).to_contain_text("completed")
    assert_not_reloaded(page)


def test_a_second_force_start_click_is_refused_and_says_so(page: Page):
    job = make_job("failed")
    page.goto(f"/jobs/{job.id}")
    jobs.force_start(job.id, actor="someone else")  # another operator was faster
    page.get_by_role("button", name="Force start", exact=True).click()
    confirm_in_page(page, "Force start")
    expect(page.locator("#recovery-card")).to_contain_text("Already queued — nothing was done.")
    db.session.rollback()
    assert [e.action for e in jobs.events_of(job.id)].count("force_start") == 1


def test_bulk_mark_failed_a_selection_confirms_with_the_count_and_reports_the_result(page: Page):
    picked = [make_job("queued") for _ in range(2)]
    spared = make_job("queued")
    page.goto("/jobs")
    for job in picked:
        page.get_by_role("checkbox", name=f"Select job {job.id}").check()
    page.get_by_label("Reason").fill("bad batch")
    page.get_by_role("button", name="Mark selected as failed", exact=True).click()
    asked = confirm_in_page(page, "Mark as failed 2 jobs")
    assert asked.startswith(f"Mark as failed: 2 jobs (#{picked[1].id}, #{picked[0].id})?")
    expect(page.get_by_role("status")).to_contain_text("Mark as failed: 2 changed.")
    for job in picked:
        expect(page.locator(f'tr[data-job-id="{job.id}"] .badge')).to_have_attribute("data-status", "failed")
    expect(page.locator(f'tr[data-job-id="{spared.id}"] .badge')).to_have_attribute("data-status", "queued")


def test_run_now_brings_a_delayed_job_forward_on_its_page_and_in_bulk(page: Page):
    later = make_job("queued", type="e2e.later", delay_s=3600)
    page.goto(f"/jobs/{later.id}")
    expect(page.get_by_test_id("next-retry")).to_be_visible()
    page.get_by_role("button", name="Run now", exact=True).click()  # nothing to confirm: nothing is lost
    expect(page.locator("#recovery-card")).to_contain_text("Run now: done.")
    expect(page.get_by_test_id("next-retry")).to_have_count(0)
    expect(page.get_by_role("button", name="Run now", exact=True)).to_have_count(0)

    picked = [make_job("queued", type="e2e.later", delay_s=3600) for _ in range(2)]
    page.goto("/jobs")
    for job in (*picked, later):
        page.get_by_role("checkbox", name=f"Select job {job.id}").check()
    page.get_by_role("button", name="Run selected now", exact=True).click()
    asked = confirm_in_page(page, "Run now 3 jobs")
    assert asked.startswith(f"Run now: 3 jobs (#{picked[1].id}, #{picked[0].id}, #{later.id})?"), asked
    expect(page.get_by_role("status")).to_contain_text("Run now: 2 changed")
    db.session.rollback()
    assert [e.action for e in jobs.events_of(later.id)].count("run_now") == 1


def test_a_change_made_elsewhere_shows_in_the_table_within_one_poll(page: Page):
    job = make_job("queued")
    page.goto("/jobs")
    mark_page(page)
    jobs.cancel_job(job.id, actor="api")
    expect(page.locator(f'tr[data-job-id="{job.id}"] .badge')).to_have_attribute("data-status", "cancelled")
    assert_not_reloaded(page)
