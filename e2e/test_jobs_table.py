"""The jobs table in a real browser: filters, sorting, keyset pages and
untrusted text, on jobs created straight in the store."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from webapp import jobs
from webapp.server.dashboard.views import PAGE_SIZE

from tests.factories import make_job

HOSTILE_ERROR = "<img src=x onerror=alert(1)> <b>bold</b>"


def rows(page: Page):
    return page.locator("table.jobs tbody tr[data-job-id]")


def row_of(page: Page, job_id: int):
    return page.locator(f'tr[data-job-id="{job_id}"]')


def shown_ids(page: Page) -> list[int]:
    return [int(i) for i in rows(page).evaluate_all("rows => rows.map(r => r.dataset.jobId)")]


def test_filtering_by_status_and_type_narrows_the_table(page: Page):
    wanted = make_job("failed", type="mail.send")
    make_job("queued", type="mail.send")
    make_job("failed", type="video.encode")
    page.goto("/jobs")
    expect(rows(page)).to_have_count(3)

    page.get_by_role("checkbox", name="Failed", exact=True).check()
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]status=failed(&|$)"))
    expect(rows(page)).to_have_count(2)

    page.get_by_label("Type", exact=True).fill("mail.send")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(rows(page)).to_have_count(1)
    expect(row_of(page, wanted.id).locator(".badge[data-status]")).to_have_attribute("data-status", "failed")
    # The filter form remembers what was asked.
    expect(page.get_by_role("checkbox", name="Failed", exact=True)).to_be_checked()
    expect(page.get_by_label("Type", exact=True)).to_have_value("mail.send")


def test_clicking_a_column_header_sorts_by_it_and_again_reverses(page: Page):
    ids = {t: make_job("queued", type=t).id for t in ["b.two", "a.one", "c.three"]}
    page.goto("/jobs")
    expect(rows(page)).to_have_count(3)

    type_header = page.get_by_role("columnheader", name="Type", exact=True)
    expect(type_header).not_to_have_attribute("aria-sort", re.compile("."))
    page.get_by_role("link", name="Type", exact=True).click()
    expect(type_header).to_have_attribute("aria-sort", "descending")  # on the <th>, where assistive tech reads it
    assert shown_ids(page) == [ids["c.three"], ids["b.two"], ids["a.one"]]

    page.get_by_role("link", name="Type", exact=True).click()
    expect(type_header).to_have_attribute("aria-sort", "ascending")
    assert shown_ids(page) == [ids["a.one"], ids["b.two"], ids["c.three"]]


def test_keyset_pages_follow_each_other_without_gaps_or_repeats(page: Page):
    created = [job.id for job in jobs.create_jobs([{"type": "demo.noop"} for _ in range(PAGE_SIZE + 5)])]
    page.goto("/jobs")
    expect(rows(page)).to_have_count(PAGE_SIZE)
    first = shown_ids(page)
    expect(page.get_by_role("link", name="« First page")).to_have_count(0)

    page.get_by_role("link", name="Next page »").click()
    expect(rows(page)).to_have_count(5)
    second = shown_ids(page)
    assert first + second == sorted(created, reverse=True)
    expect(page.get_by_role("link", name="Next page »")).to_have_count(0)

    page.get_by_role("link", name="« First page").click()
    expect(rows(page)).to_have_count(PAGE_SIZE)
    assert shown_ids(page) == first


def test_html_in_an_error_is_shown_as_literal_text_in_the_table_and_the_error_panel(page: Page):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    job = jobs.mark_failed(make_job("queued").id, reason=HOSTILE_ERROR)

    page.goto("/jobs")
    expect(row_of(page, job.id).locator(".error-line")).to_have_text(HOSTILE_ERROR)
    expect(row_of(page, job.id).locator("img, b")).to_have_count(0)

    page.get_by_role("link", name=str(job.id), exact=True).click()
    panel = page.locator("[data-testid=error-panel]")
    expect(panel.locator("pre.message")).to_have_text(HOSTILE_ERROR)
    expect(panel.locator("img, b")).to_have_count(0)
    # Let a poll re-render the region: the text must stay text then too.
    page.locator("#job-region").evaluate("region => region.dataset.stale = 'yes'")
    expect(page.locator("#job-region:not([data-stale])")).to_have_count(1)
    expect(panel.locator("pre.message")).to_have_text(HOSTILE_ERROR)
    expect(panel.locator("img, b")).to_have_count(0)
    assert dialogs == []
