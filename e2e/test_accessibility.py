"""axe-core (npm, pinned in package.json) over every page and state of the
dashboard, in light and dark colour schemes: no violations at all."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import server_settings as base_settings  # noqa: F401
from webapp import jobs

from tests.factories import make_job
from tests.support.server import PROJECT_ROOT

AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse battery staple"
STATUSES = ["pending", "queued", "claimed", "running", "completed", "failed", "cancelled"]


@pytest.fixture
def server_settings(base_settings):  # noqa: F811
    return {**base_settings, "JOBWARDEN_ADMIN_PASSWORD": PASSWORD, "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE": "1"}


@pytest.fixture(params=["light", "dark"])
def audited_page(request, browser, server) -> Iterator[Page]:
    # axe is injected as a script of its own, which the pages' CSP would refuse.
    context = browser.new_context(base_url=server.url, color_scheme=request.param, bypass_csp=True)
    yield context.new_page()
    context.close()


def violations(page: Page, state: str) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`)"
    )
    return [f"{state}: {line}" for line in found]


def test_every_page_and_state_has_no_axe_violations(audited_page: Page):
    page = audited_page
    by_status = {status: make_job(status) for status in STATUSES}
    jobs.mark_failed(make_job("queued").id, reason="ffmpeg exited 1\nTraceback (most recent call last): …")
    running = make_job("running", max_attempts=3)
    jobs.fail_job(running.id, running.lease_token, error="flaky upstream", retryable=True)  # waits for a retry
    found: list[str] = []

    page.goto("/login")
    found += violations(page, "login")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    found += violations(page, "login refused")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto("/jobs")
    expect(page.locator("tr[data-job-id]")).to_have_count(len(STATUSES) + 2)
    found += violations(page, "jobs table")
    page.locator("tr[data-job-id] input[type=checkbox]").first.check()
    found += violations(page, "jobs table, a row selected")
    page.get_by_role("button", name="Cancel selected", exact=True).click()
    expect(page.locator("dialog#confirm-dialog")).to_be_visible()
    found += violations(page, "bulk confirmation")
    page.keyboard.press("Escape")

    for status, job in [*by_status.items(), ("queued retry", running)]:
        page.goto(f"/jobs/{job.id}")
        found += violations(page, f"job page, {status}")
    page.goto(f"/jobs/{by_status['running'].id}")
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator("dialog#confirm-dialog")).to_be_visible()
    found += violations(page, "cancel confirmation")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#action-outcome")).to_contain_text("Cancel: done.")
    found += violations(page, "job page after an action")

    page.goto("/health")
    found += violations(page, "health")
    page.goto("/stats")
    found += violations(page, "stats")
    page.goto("/jobs/999999")
    found += violations(page, "not found")

    page.goto("/webhooks")
    found += violations(page, "webhooks, none yet")
    page.get_by_label("URL").fill("http://127.0.0.1:9/hooks")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("alert")).to_contain_text("events: choose at least one event")
    found += violations(page, "webhooks, add refused")
    page.get_by_label("job.failed").check()
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_test_id("secret-value")).to_be_visible()
    found += violations(page, "webhooks, the new secret")
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("dialog#confirm-dialog")).to_be_visible()
    found += violations(page, "webhook delete confirmation")
    page.keyboard.press("Escape")
    page.get_by_role("link", name="Deliveries").click()
    # The endpoint's page, loaded: axe injected while the link's navigation ran found no document head.
    page.wait_for_url(re.compile(r"/webhooks/\d+$"))
    found += violations(page, "webhook deliveries")

    assert not found, "\n".join(found)
