"""The /schedules page in a real browser against a real server: add a schedule, pause it,
trigger it now through the in-page confirmation (Back changes nothing), and follow its run
to the job page, which says the schedule made it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from e2e.dialogs import confirm_in_page, confirmation
from webapp.jobs import schedules as store
from webapp.store.extensions import db


def runs() -> list:
    db.session.rollback()  # see the server's commits
    return store.last_runs(["nightly"], 10)["nightly"]


def test_create_pause_trigger_now_and_see_the_run(page: Page):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/schedules")
    page.get_by_label("Name").fill("nightly")
    page.get_by_label("Job type").fill("report")
    page.get_by_label("Cron").fill("30 2 * * *")
    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Add schedule").click()
    expect(page.get_by_test_id("schedule-error")).to_contain_text("timezone: unknown time zone 'Mars/Olympus'")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Add schedule").click()
    expect(page.get_by_role("status")).to_have_text("Schedule nightly added.")
    row = page.locator('tr[data-schedule="nightly"]')
    expect(row.get_by_test_id("schedule-words")).to_contain_text("every day at 02:30 Europe/Berlin")
    expect(row.get_by_test_id("schedule-upcoming").locator("li")).to_have_count(3)

    row.get_by_role("button", name="Pause", exact=True).click()
    expect(row.get_by_test_id("schedule-state")).to_have_text("paused")
    assert store.get("nightly").paused is True

    row.get_by_role("button", name="Trigger now", exact=True).click()
    expect(confirmation(page)).to_be_visible()
    assert confirm_in_page(page, "Back").startswith("Run schedule nightly now?")
    page.wait_for_timeout(500)  # time for a request that should not be made
    assert runs() == []

    row.get_by_role("button", name="Trigger now", exact=True).click()
    confirm_in_page(page, "Trigger now")
    expect(page.get_by_role("status")).to_contain_text("Schedule nightly triggered: job")
    (run,) = runs()
    badge = row.get_by_test_id("schedule-runs").locator(f'a[href$="/jobs/{run.id}"]')
    expect(badge).to_be_visible()
    badge.click()
    expect(page.get_by_test_id("job-schedule")).to_contain_text("created by schedule nightly for")
    assert dialogs == []  # never the browser's confirm()
