"""The /queues page in a real browser against a real server: numbers per queue, pause and
resume through the in-page confirmation (Back changes nothing), limits saved from the
form, and a bad limit refused with the field named and nothing changed."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from e2e.dialogs import confirm_in_page, confirmation
from webapp import jobs
from webapp.jobs import queues
from webapp.store.extensions import db


def current(name: str) -> queues.QueueView:
    db.session.rollback()  # see the server's commits
    return queues.get_queue(name)


def test_pause_resume_and_limits_of_a_queue(page: Page):
    jobs.create_jobs([{"type": "t", "queue": "gpu"}] * 3)
    page.goto("/queues")
    row = page.locator('tr[data-queue="gpu"]')
    expect(row.locator("td").nth(2)).to_have_text("3")

    row.get_by_role("button", name="Pause", exact=True).click()
    expect(confirmation(page)).to_be_visible()
    confirm_in_page(page, "Back")
    page.wait_for_timeout(500)  # time for a request that should not be made
    assert not current("gpu").paused

    row.get_by_role("button", name="Pause", exact=True).click()
    question = confirm_in_page(page, "Pause queue")
    assert question.startswith("Pause queue gpu (3 queued)?")
    expect(page.get_by_role("status")).to_have_text("Queue gpu: paused.")
    expect(row.get_by_test_id("queue-state")).to_have_text("paused")
    assert current("gpu").paused

    row.get_by_role("button", name="Resume", exact=True).click()
    confirm_in_page(page, "Resume queue")
    expect(row.get_by_test_id("queue-state")).to_have_text("active")

    row.get_by_label("concurrency").fill("2")
    row.get_by_role("button", name="Save limits").click()
    expect(row.get_by_test_id("queue-running")).to_have_text("0 / 2")
    assert current("gpu").concurrency == 2

    row.get_by_label("rate", exact=True).fill("5")
    row.get_by_role("button", name="Save limits").click()
    expect(page.get_by_test_id("queue-error")).to_contain_text("rate_limit")
    assert current("gpu").rate_limit is None and current("gpu").concurrency == 2
