"""The dashboard while things break, in a real browser against a real server:
polling that survives a restart, polls that leave the operator's focus, selection,
typing, scroll and open panels alone, in-page confirmations, and bulk selection."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from e2e.dialogs import confirm_in_page, confirmation
from webapp import jobs

from tests.factories import make_job

RESTART_MS = 30_000  # a stopped server, its restart, and the backed-off retry that finds it


def live_status(page: Page):
    return page.locator("[data-testid=live-status]")


def badge(page: Page):
    return page.locator("#job-region .summary .badge[data-status]")


def mark_page(page: Page) -> None:
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def next_poll(page: Page, region: str) -> None:
    """Wait until a poll has re-rendered `region`: a morph drops the attribute the server never sent."""
    page.locator(region).evaluate("element => element.setAttribute('data-before-poll', '')")
    expect(page.locator(f"{region}:not([data-before-poll])")).to_have_count(1)


# --- 1. Polling never dies ---------------------------------------------------------------


def test_the_job_page_reconnects_after_a_server_restart_and_shows_what_changed_meanwhile(page: Page, server):
    job = make_job("queued")
    page.goto(f"/jobs/{job.id}")
    expect(live_status(page)).to_have_attribute("data-state", "live")
    mark_page(page)

    server.stop()
    expect(live_status(page)).to_have_attribute("data-state", "reconnecting", timeout=RESTART_MS)
    expect(live_status(page)).to_contain_text("Reconnecting")
    jobs.cancel_job(job.id, actor="api", reason="changed while the server was down")
    page.wait_for_timeout(3_000)  # several failed polls, so the retry has backed off
    server.start()

    expect(badge(page)).to_have_attribute("data-status", "cancelled", timeout=RESTART_MS)
    expect(live_status(page)).to_have_attribute("data-state", "live")
    expect(page.locator(".timeline")).to_contain_text("changed while the server was down")
    assert_not_reloaded(page)


def test_the_table_keeps_polling_after_a_server_error_answer(page: Page, server):
    job = make_job("queued")
    page.goto("/jobs")
    mark_page(page)
    failing = {"left": 3}

    def fail_some(route):
        if failing["left"] > 0 and route.request.headers.get("hx-request"):
            failing["left"] -= 1
            route.fulfill(status=500, body="boom")
        else:
            route.continue_()

    page.route("**/jobs?*", fail_some)
    page.route("**/jobs", fail_some)
    expect(live_status(page)).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    jobs.cancel_job(job.id, actor="api")
    expect(page.locator(f'tr[data-job-id="{job.id}"] .badge')).to_have_attribute(
        "data-status", "cancelled", timeout=20_000
    )
    expect(live_status(page)).to_have_attribute("data-state", "live")
    assert failing["left"] == 0
    assert_not_reloaded(page)


# --- 2. Polls leave the operator's work alone ------------------------------------------------


def test_a_poll_keeps_the_focus_on_a_row_link(page: Page):
    job = make_job("queued")
    make_job("queued")
    page.goto("/jobs")
    link = page.locator(f'tr[data-job-id="{job.id}"] a').first
    link.focus()
    next_poll(page, "#jobs-region")
    next_poll(page, "#jobs-region")
    assert page.evaluate(
        "document.activeElement.closest('tr') && document.activeElement.closest('tr').dataset.jobId"
    ) == str(job.id)


def test_a_poll_keeps_a_text_selection(page: Page):
    make_job("queued", type="mail.send.selectable")
    page.goto("/jobs")
    cell = page.locator("td", has_text="mail.send.selectable")
    cell.evaluate(
        "td => { const r = document.createRange(); r.selectNodeContents(td);"
        " const s = getSelection(); s.removeAllRanges(); s.addRange(r); }"
    )
    next_poll(page, "#jobs-region")
    next_poll(page, "#jobs-region")
    assert page.evaluate("getSelection().toString()").strip() == "mail.send.selectable"


def test_a_reason_typed_for_mark_as_failed_survives_polls_and_is_submitted(page: Page):
    job = make_job("queued")
    page.goto(f"/jobs/{job.id}")
    page.get_by_label("Reason").fill("disk full on worker 3")
    page.keyboard.press("Tab")  # to the button: the field is no longer focused
    assert page.evaluate("document.activeElement.textContent.trim()") == "Mark as failed"
    next_poll(page, "#job-region")
    next_poll(page, "#job-region")
    expect(page.get_by_label("Reason")).to_have_value("disk full on worker 3")
    page.keyboard.press("Enter")
    confirm_in_page(page, "Mark as failed")
    expect(badge(page)).to_have_attribute("data-status", "failed")
    expect(page.locator("[data-testid=error-panel]")).to_contain_text("disk full on worker 3")


def test_a_poll_keeps_the_tables_sideways_scroll(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 760, "height": 740})
    page = context.new_page()
    try:
        make_job("queued", type="a.rather.long.type.name.that.widens.the.table")
        page.goto("/jobs")
        wrap = page.locator("#jobs-region .table-wrap")
        wrap.evaluate("box => { box.scrollLeft = 150; }")
        scrolled = wrap.evaluate("box => box.scrollLeft")
        assert scrolled > 0, "the table should be wider than a narrow window"
        next_poll(page, "#jobs-region")
        next_poll(page, "#jobs-region")
        assert wrap.evaluate("box => box.scrollLeft") == scrolled
    finally:
        context.close()


def test_a_poll_keeps_details_as_the_operator_left_them(page: Page):
    job = make_job("queued", payload={"blob": "y" * 5000})
    page.goto(f"/jobs/{job.id}")
    payload = page.locator("[data-testid=job-payload]")
    expect(payload).to_have_attribute("open", "")
    page.get_by_text("Show all").click()
    expect(page.locator("#payload-all")).to_have_attribute("open", "")
    next_poll(page, "#job-region")
    next_poll(page, "#job-region")
    expect(page.locator("#payload-all")).to_have_attribute("open", "")
    payload.locator("> summary").click()  # close the payload panel
    expect(payload).not_to_have_attribute("open", "")
    next_poll(page, "#job-region")
    next_poll(page, "#job-region")
    expect(payload).not_to_have_attribute("open", "")


# --- 3. Confirmations and the answer to an action -----------------------------------------


def test_force_start_on_a_failed_job_asks_and_the_answer_updates_the_whole_region(page: Page):
    job = make_job("failed")
    page.goto(f"/jobs/{job.id}")
    page.get_by_role("button", name="Force start", exact=True).click()
    dialog = confirmation(page)
    expect(dialog).to_contain_text(f"Force start job {job.id} ({job.type}, failed)?")
    expect(dialog.get_by_role("button", name="Back", exact=True)).to_be_focused()
    page.route("**/jobs/*", lambda route: route.abort() if route.request.method == "GET" else route.continue_())
    confirm_in_page(page, "Force start")  # no poll can answer now: what follows came with the action
    expect(badge(page)).to_have_attribute("data-status", "queued")
    expect(page.locator(".timeline")).to_contain_text("force_start: failed → queued")
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_visible()


def test_force_start_on_a_pending_job_does_not_ask(page: Page):
    job = make_job("pending")
    page.goto(f"/jobs/{job.id}")
    page.get_by_role("button", name="Force start", exact=True).click()
    expect(badge(page)).to_have_attribute("data-status", "queued")
    expect(confirmation(page)).to_be_hidden()


def test_the_outcome_of_an_action_stays_through_polls_until_dismissed(page: Page):
    job = make_job("queued")
    page.goto(f"/jobs/{job.id}")
    page.get_by_role("button", name="Cancel", exact=True).click()
    confirm_in_page(page, "Cancel job")
    outcome = page.locator("#action-outcome")
    expect(outcome).to_contain_text("Cancel: done.")
    for _ in range(3):
        next_poll(page, "#job-region")
    expect(outcome).to_contain_text("Cancel: done.")
    outcome.get_by_role("button", name="Dismiss").click()
    expect(outcome).to_be_empty()


def test_the_bulk_confirmation_can_be_backed_out_of(page: Page):
    job = make_job("queued")
    page.goto("/jobs")
    page.get_by_role("checkbox", name=f"Select job {job.id}").check()
    page.get_by_role("button", name="Cancel selected", exact=True).click()
    expect(confirmation(page)).to_contain_text(f"1 job (#{job.id})")
    confirm_in_page(page, "Back")
    page.wait_for_timeout(500)
    expect(page.locator(f'tr[data-job-id="{job.id}"] .badge')).to_have_attribute("data-status", "queued")


# --- 7. Bulk selection ---------------------------------------------------------------------------


def test_bulk_buttons_wait_for_a_selection_which_is_counted_highlighted_and_pauses_refresh(page: Page):
    ids = [make_job("queued").id for _ in range(3)]
    page.goto("/jobs")
    bulk = page.get_by_role("button", name="Cancel selected", exact=True)
    expect(bulk).to_be_disabled()
    expect(page.get_by_test_id("selected-count")).to_have_text("Nothing selected")
    expect(live_status(page)).to_have_attribute("data-state", "live")

    page.get_by_role("checkbox", name=f"Select job {ids[0]}").check()
    expect(bulk).to_be_enabled()
    expect(page.get_by_test_id("selected-count")).to_have_text("1 selected")
    expect(page.locator(f'tr[data-job-id="{ids[0]}"]')).to_have_class("status-queued selected")
    expect(live_status(page)).to_have_attribute("data-state", "paused")
    expect(live_status(page)).to_contain_text("paused while selecting")

    page.get_by_role("checkbox", name="Select all jobs on this page").check()
    expect(page.get_by_test_id("selected-count")).to_have_text("3 selected")
    page.get_by_role("checkbox", name="Select all jobs on this page").uncheck()
    expect(bulk).to_be_disabled()
    expect(live_status(page)).to_have_attribute("data-state", "live")


# --- 9. Live counts, filters as they are chosen --------------------------------------------------


def test_the_counts_on_the_jobs_page_follow_changes_and_filter_when_clicked(page: Page):
    job = make_job("queued")
    page.goto("/jobs")
    failed_count = page.locator('[data-status-count="failed"] .num')
    expect(failed_count).to_have_text("0")
    mark_page(page)
    jobs.mark_failed(job.id, reason="changed elsewhere")
    expect(failed_count).to_have_text("1")
    assert_not_reloaded(page)
    page.locator('[data-status-count="failed"]').click()
    expect(page.locator("tr[data-job-id]")).to_have_count(1)
    expect(page.get_by_role("checkbox", name="Failed", exact=True)).to_be_checked()


def test_a_status_filter_applies_as_soon_as_it_is_ticked(page: Page):
    make_job("queued")
    make_job("failed")
    page.goto("/jobs")
    expect(page.locator("tr[data-job-id]")).to_have_count(2)
    page.get_by_role("checkbox", name="Failed", exact=True).check()
    expect(page).to_have_url(re.compile(r"[?&]status=failed(&|$)"))
    expect(page.locator("tr[data-job-id]")).to_have_count(1)


# --- 6. Times in the viewer's zone ---------------------------------------------------------------


def test_times_are_shown_in_the_viewers_zone_with_the_absolute_time_in_the_title(browser, server):
    job = make_job("queued")
    context = browser.new_context(base_url=server.url, timezone_id="Asia/Tokyo", locale="en-GB")
    page = context.new_page()
    try:
        page.goto(f"/jobs/{job.id}")
        created = page.locator("#job-region .summary time[data-local]").first
        utc = job.created_at
        tokyo_hour = (utc.hour + 9) % 24
        expect(created).to_have_text(
            re.compile(rf"^\d{{4}}-\d\d-\d\d {tokyo_hour:02d}:{utc.minute:02d}:\d\d (GMT\+9|JST)$")
        )
        expect(created).to_have_attribute("title", re.compile(rf" {tokyo_hour:02d}:{utc.minute:02d}:"))
        next_poll(page, "#job-region")  # a poll's fresh UTC text is shown in the zone again
        expect(created).to_have_text(re.compile(rf" {tokyo_hour:02d}:{utc.minute:02d}:\d\d (GMT\+9|JST)$"))
    finally:
        context.close()


# --- 4. A retry's countdown -------------------------------------------------------------------------


def test_a_waiting_retry_counts_down_then_joins_the_queue(page: Page):
    running = make_job("running", max_attempts=3)
    jobs.fail_job(running.id, running.lease_token, error="flaky upstream", retryable=True)
    page.goto(f"/jobs/{running.id}")
    countdown = page.locator("[data-testid=next-retry] time[data-countdown]")
    expect(countdown).to_have_text(re.compile(r"^in \d+s$"))
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first)  # it ticks between polls
    expect(page.locator("[data-testid=next-retry]")).to_have_count(0, timeout=20_000)
    expect(page.locator("#job-region .summary")).to_contain_text("#1 in queue")
