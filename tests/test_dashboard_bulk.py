"""Bulk actions on /jobs through the Flask test client: a selection or all that
match the filter, each job its own compare-and-set, with a summary of what changed."""

from __future__ import annotations

import re

from webapp import jobs
from webapp.store.extensions import db

from tests.factories import make_job


def page(client, query: str = "") -> str:
    return client.get(f"/jobs{query}").get_data(as_text=True)


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def post_bulk(client, query: str = "", **form):
    token = csrf_token(page(client, query))
    return client.post("/jobs/bulk", data={"csrf_token": token, **form}, follow_redirects=True)


def status_of(job_id: int) -> str:
    db.session.expire_all()
    return jobs.get_job(job_id).status


def test_the_jobs_page_offers_a_checkbox_per_row_and_the_three_bulk_buttons(client):
    job = make_job("queued")
    html = page(client)
    assert f'name="ids" value="{job.id}" form="bulk-form"' in html
    for label in ("Force start selected", "Mark selected as failed", "Cancel selected"):
        assert f">{label}</button>" in html
    assert "Select all matching (1)" in html


def test_marking_a_selection_failed_changes_those_jobs_and_no_others(client):
    first, second, untouched = make_job("queued"), make_job("running"), make_job("queued")
    html = post_bulk(client, action="mark-failed", ids=[first.id, second.id], reason="bad batch").get_data(as_text=True)
    assert "Mark as failed: 2 changed." in html
    assert (status_of(first.id), status_of(second.id), status_of(untouched.id)) == ("failed", "failed", "queued")
    assert jobs.get_job(first.id).last_error == "bad batch"


def test_jobs_that_moved_on_are_skipped_with_their_status(client):
    queued, completed = make_job("queued"), make_job("completed")
    html = post_bulk(client, action="cancel", ids=[queued.id, completed.id]).get_data(as_text=True)
    assert "Cancel: 1 changed; 1 skipped" in html
    assert f"#{completed.id} (already completed — nothing was done)" in html
    assert status_of(completed.id) == "completed"


def test_all_matching_acts_on_every_job_the_filter_matches(client):
    failed = [make_job("failed", type="mail.send") for _ in range(3)]
    other = make_job("failed", type="video.encode")
    response = post_bulk(client, "?type=mail.send", action="force-start", all_matching="1", type="mail.send")
    assert "Force start: 3 changed." in response.get_data(as_text=True)
    assert [status_of(job.id) for job in failed] == ["queued"] * 3
    assert status_of(other.id) == "failed"


def test_a_bulk_action_with_nothing_selected_does_nothing_and_says_so(client):
    job = make_job("queued")
    html = post_bulk(client, action="cancel").get_data(as_text=True)
    assert "Nothing was done — no jobs were selected." in html
    assert status_of(job.id) == "queued"


def test_a_bulk_action_without_the_csrf_token_is_refused(client):
    job = make_job("queued")
    response = client.post("/jobs/bulk", data={"action": "cancel", "ids": [job.id]})
    assert response.status_code == 400
    assert status_of(job.id) == "queued"


def test_a_read_only_dashboard_shows_no_bulk_form_and_refuses_the_post(app, client):
    job = make_job("queued")
    app.config["JOBWARDEN_READ_ONLY"] = True
    assert "bulk-form" not in page(client)
    app.config["WTF_CSRF_ENABLED"] = False
    assert client.post("/jobs/bulk", data={"action": "cancel", "ids": [job.id]}).status_code == 403
    assert status_of(job.id) == "queued"
