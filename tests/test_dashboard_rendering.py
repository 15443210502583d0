"""The jobs table's cells, byte for byte, through the real page on both databases.

The row helpers (badges, progress bars, time tags, the job links) are built in Python
for speed (webapp.server.dashboard.display); these tests hold them to the HTML the
Jinja macros, `Markup.format`, strftime and url_for wrote before.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from flask import url_for
from sqlalchemy import update

from webapp import jobs
from webapp.domain.statuses import Status
from webapp.server.dashboard import display
from webapp.store.extensions import db
from webapp.store.models import Job

from tests.factories import make_job

SHAPES = {  # the inline SVG of each status, as templates/includes/badge.html had them
    "pending": '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="2"/>'
    '<path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" stroke-width="1.6"/>',
    "queued": '<path d="M3 4h10M3 8h10M3 12h6" stroke="currentColor" stroke-width="2" fill="none"/>',
    "claimed": '<path d="M8 2l6 6-6 6-6-6z" fill="currentColor"/>',
    "running": '<path d="M4 2.5l9 5.5-9 5.5z" fill="currentColor"/>',
    "completed": '<path d="M2.5 8.5l3.5 3.5 7.5-8" fill="none" stroke="currentColor" stroke-width="2.2"/>',
    "failed": '<path d="M3.5 3.5l9 9M12.5 3.5l-9 9" stroke="currentColor" stroke-width="2.4"/>',
    "cancelled": '<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="2"/>'
    '<path d="M3.8 12.2l8.4-8.4" stroke="currentColor" stroke-width="2"/>',
}


def row_of(html: str, job_id: int) -> str:
    return re.search(rf'<tr data-job-id="{job_id}".*?</tr>', html, re.S).group(0)


def expected_badge(status: str) -> str:
    return (
        f'<span class="badge badge-{status}" data-status="{status}"><svg class="icon" aria-hidden="true" '
        f'focusable="false" viewBox="0 0 16 16" width="12" height="12">{SHAPES[status]}</svg>'
        f"{status.capitalize()}</span>"
    )


@pytest.mark.parametrize("status", [str(s) for s in Status])
def test_each_row_has_its_badge_its_link_and_its_times(client, app, status):
    job = make_job(status)
    # A whole second: isoformat() would drop the fraction unless told; strftime never did.
    db.session.execute(update(Job).where(Job.id == job.id).values(created_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)))
    db.session.commit()
    job = jobs.get_job(job.id)
    row = row_of(client.get("/jobs").get_data(as_text=True), job.id)
    with app.test_request_context():
        link = url_for("dashboard.job_page", job_id=job.id)
    assert f'<td><a href="{link}">{job.id}</a></td>' in row
    assert expected_badge(status) in row
    assert (
        '<td class="phone-hide when"><time datetime="2026-03-04T05:06:07.000000Z" title="2026-03-04 05:06:07 UTC" '
        "data-local>2026-03-04 05:06:07 UTC</time></td>"
    ) in row
    updated = job.updated_at
    assert re.search(
        rf'<td><time datetime="{updated.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}" '
        rf'title="{updated.strftime("%Y-%m-%d %H:%M:%S UTC")}">\d+s ago</time></td>',
        row,
    ), row


@pytest.mark.parametrize(("value", "shown"), [(0.0, 0), (12.4, 12), (49.5, 50), (50.5, 50), (99.6, 100), (100.0, 100)])
def test_a_running_jobs_progress_is_a_bar_and_its_rounded_percentage(client, value, shown):
    job = make_job("running")
    jobs.heartbeat(job.id, job.lease_token, progress=value)
    row = row_of(client.get("/jobs").get_data(as_text=True), job.id)
    # Jinja's `round(0) | int` rounded half to even, as Python's round does.
    assert (
        f'<progress max="100" value="{value}" aria-label="Progress">{shown}%</progress> <span class="num">{shown}%</span>'
    ) in row


def test_the_time_texts_are_what_strftime_wrote():
    for moment in (
        datetime(2026, 12, 6, 7, 49, 50, 827300, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2031, 9, 9, 9, 9, 9, 9, tzinfo=UTC),
    ):
        written = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
        assert display.when(moment) == written
        assert str(display.timetag(moment)) == (
            f'<time datetime="{moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}" title="{written}" data-local>{written}</time>'
        )


def test_a_status_the_badges_do_not_know_is_escaped_and_has_no_shape():
    assert str(display.badge("<b>")) == (
        '<span class="badge badge-&lt;b&gt;" data-status="&lt;b&gt;"><svg class="icon" aria-hidden="true" '
        'focusable="false" viewBox="0 0 16 16" width="12" height="12"></svg>&lt;b&gt;</span>'
    )


def test_a_job_type_wraps_after_its_dots_and_stays_escaped():
    assert display.wrappable("media.video_hd/4k") == "media.<wbr>video_<wbr>hd/<wbr>4k"
    assert display.wrappable("plain") == "plain"
    assert display.wrappable('<img src=x onerror="alert(1)">.y') == (
        "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;.<wbr>y"
    )
