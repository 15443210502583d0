"""The dashboard for operators who are not at a desk with a mouse and JavaScript:
a phone-width screen, the keyboard alone, and a browser with scripts off."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from webapp import jobs
from webapp.store.extensions import db

from tests.factories import make_job

PHONE = {"width": 375, "height": 740}
LONG_ERROR = "video.encode: ffmpeg exited 1 after " + "frame=1234 fps=25 q=28.0 size=4096kB " * 20


def new_page(browser: Browser, server, **options) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url, **options)
    yield context.new_page()
    context.close()


@pytest.fixture
def phone_page(browser, server) -> Iterator[Page]:
    yield from new_page(browser, server, viewport=PHONE, is_mobile=True, has_touch=True)


@pytest.fixture
def scriptless_page(browser, server) -> Iterator[Page]:
    yield from new_page(browser, server, java_script_enabled=False)


def scrolls_sideways(page: Page) -> bool:
    # Against the screen's width, not innerWidth: a mobile browser widens its
    # layout viewport (zooms out) to fit content that overflows.
    return page.evaluate("document.documentElement.scrollWidth") > PHONE["width"]


def badge(page: Page):
    return page.locator("#job-region .summary .badge[data-status]")


def test_at_phone_width_the_jobs_page_fits_the_screen_with_the_first_job_on_the_first_screen(phone_page: Page):
    failed = make_job("queued", type="video.encode.with-a-rather-long-type-name")
    jobs.mark_failed(failed.id, reason=LONG_ERROR)
    make_job("queued")
    phone_page.goto("/jobs")

    rows = phone_page.locator("table.jobs tbody tr[data-job-id]")
    expect(rows).to_have_count(2)
    assert not scrolls_sideways(phone_page)
    wrap = phone_page.locator("#jobs-region .table-wrap")
    assert wrap.evaluate("box => box.scrollWidth <= box.clientWidth"), "the compact rows should fit 375 px"
    first = rows.first.bounding_box()
    assert first is not None and first["y"] + first["height"] <= PHONE["height"], f"first row at {first}"
    expect(phone_page.locator(f'tr[data-job-id="{failed.id}"] .error-line')).to_be_visible()

    # The filters are one tap away, and still apply.
    phone_page.get_by_text("Filters", exact=True).click()
    expect(phone_page.get_by_role("button", name="Filter", exact=True)).to_be_visible()


def test_at_phone_width_every_control_in_the_table_is_a_44_px_touch_target(phone_page: Page):
    make_job("queued")
    phone_page.goto("/jobs")
    row = phone_page.locator("table.jobs tbody tr[data-job-id]").first
    targets = [row.locator("label.hit"), row.locator("a").first, phone_page.get_by_role("link", name="Health")]
    for target in targets:
        box = target.bounding_box()
        assert box is not None and box["width"] >= 44 and box["height"] >= 44, (target, box)
    # Ticking through the big target selects the row.
    row.locator("label.hit").click()
    expect(row.locator("input[type=checkbox]")).to_be_checked()
    expect(phone_page.get_by_role("button", name="Cancel selected", exact=True)).to_be_visible()


def test_at_phone_width_the_job_page_fits_and_its_recovery_actions_are_reachable(phone_page: Page):
    job = make_job("queued")
    jobs.mark_failed(job.id, reason=LONG_ERROR)
    phone_page.goto(f"/jobs/{job.id}")

    expect(badge(phone_page)).to_have_attribute("data-status", "failed")
    assert not scrolls_sideways(phone_page)
    force_start = phone_page.get_by_role("button", name="Force start", exact=True)
    force_start.scroll_into_view_if_needed()
    expect(force_start).to_be_in_viewport()
    box = force_start.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_the_keyboard_alone_reaches_cancel_and_confirms_it(page: Page):
    job = make_job("queued")
    page.goto(f"/jobs/{job.id}")
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Cancel":
            break
    else:
        pytest.fail("Tab never reached the Cancel button")
    page.keyboard.press("Enter")
    dialog = page.locator("dialog#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Cancel job {job.id}")
    page.keyboard.press("Shift+Tab")  # from Back, where the dialog opens, to the confirming button
    assert page.evaluate("document.activeElement.textContent.trim()") == "Cancel job"
    page.keyboard.press("Enter")

    expect(badge(page)).to_have_attribute("data-status", "cancelled")


def test_every_focused_control_shows_a_focus_outline(page: Page):
    make_job("queued")
    page.goto("/jobs")
    for _ in range(12):
        page.keyboard.press("Tab")
        outline = page.evaluate(
            "(() => { const s = getComputedStyle(document.activeElement);"
            " return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0 || s.boxShadow !== 'none'; })()"
        )
        focused = page.evaluate("document.activeElement.outerHTML.slice(0, 80)")
        assert outline, f"no visible focus on {focused}"


def test_without_javascript_the_filters_work_and_an_action_still_acts(scriptless_page: Page):
    page = scriptless_page
    wanted = make_job("queued", type="mail.send")
    make_job("failed", type="mail.send")
    page.goto("/jobs")
    page.get_by_role("checkbox", name="Queued", exact=True).check()
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]status=queued(&|$)"))
    expect(page.locator("table.jobs tbody tr[data-job-id]")).to_have_count(1)

    page.locator(f'tr[data-job-id="{wanted.id}"] a').first.click()
    expect(page).to_have_url(re.compile(rf"/jobs/{wanted.id}$"))
    page.get_by_role("button", name="Cancel", exact=True).click()

    expect(badge(page)).to_have_attribute("data-status", "cancelled")
    expect(page.get_by_role("status").filter(has_text="Cancel: done.")).to_be_visible()
    db.session.rollback()
    assert jobs.get_job(wanted.id).status == "cancelled"
