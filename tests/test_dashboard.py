"""The dashboard through the Flask test client on real databases: pages, HTMX
regions, the recovery card, refusals, CSRF and untrusted text."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from webapp import jobs
from webapp.domain.statuses import Status
from webapp.domain.timeutil import utcnow
from webapp.server.dashboard import views
from webapp.store.extensions import db
from webapp.store.models import Job

from tests.factories import make_job

ALL = [str(s) for s in Status]
BUTTONS = {
    "pending": ["Force start", "Mark as failed", "Cancel"],
    "queued": ["Mark as failed", "Cancel"],
    "claimed": ["Mark as failed", "Cancel"],
    "running": ["Mark as failed", "Cancel"],
    "completed": [],
    "failed": ["Force start"],
    "cancelled": ["Force start"],
}
HX = {"HX-Request": "true"}


def text_of(response) -> str:
    return response.get_data(as_text=True)


def has_badge(html: str, status: str, label: str) -> bool:
    """A badge for `status` whose text (after its icon) is exactly `label`."""
    return re.search(rf'data-status="{status}"><svg[^>]*>.*?</svg>{label}</span>', html) is not None


def buttons_in(html: str) -> list[str]:
    return re.findall(r'<button type="submit" class="(?:danger|primary)">([^<]+)</button>', html)


def csrf_token(client, job_id: int) -> str:
    html = text_of(client.get(f"/jobs/{job_id}"))
    return re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)


def post_action(client, job_id: int, action: str, *, htmx: bool = True, **form):
    token = csrf_token(client, job_id)
    headers = dict(HX, **{"X-CSRFToken": token}) if htmx else {}
    data = form if htmx else dict(form, csrf_token=token)
    return client.post(f"/jobs/{job_id}/{action}", data=data, headers=headers)


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-job-id="(\d+)"', html)]


def test_the_root_redirects_to_the_jobs_table(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/jobs")


@pytest.mark.parametrize("status", ALL)
def test_the_jobs_table_shows_a_job_in_each_status_with_its_badge(client, status):
    job = make_job(status)
    html = text_of(client.get("/jobs"))
    assert f'<tr data-job-id="{job.id}"' in html
    assert has_badge(html, status, Status(status).label)


def test_an_htmx_poll_of_the_table_gets_only_the_table_region_with_its_next_poll(client):
    make_job("queued")
    html = text_of(client.get("/jobs?status=queued", headers=HX))
    assert "<html" not in html and "<form" not in html
    assert html.strip().startswith('<div id="jobs-region"')
    assert 'hx-trigger="jw:poll"' in html and 'hx-swap="morph"' in html and "data-poll" in html
    assert 'hx-get="/jobs?status=queued"' in html


def test_the_full_table_page_carries_the_filters_and_the_csrf_header(client):
    html = text_of(client.get("/jobs?type=demo.noop"))
    assert "<html" in html and 'name="type" value="demo.noop"' in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_the_status_filter_takes_several_statuses(client):
    failed, cancelled, queued = make_job("failed"), make_job("cancelled"), make_job("queued")
    html = text_of(client.get("/jobs?status=failed&status=cancelled"))
    assert sorted(row_ids(html)) == sorted([failed.id, cancelled.id])
    assert queued.id not in row_ids(html)


def test_type_worker_and_text_filters_narrow_the_table(client):
    a = make_job("queued", type="mail.send")
    b = make_job("running", type="video.encode")
    assert row_ids(text_of(client.get("/jobs?type=mail.send"))) == [a.id]
    assert row_ids(text_of(client.get("/jobs?worker=factory-worker"))) == [b.id]
    assert row_ids(text_of(client.get("/jobs?q=video"))) == [b.id]


def test_the_text_filter_finds_a_job_by_its_error(client):
    failed = jobs.mark_failed(make_job("queued").id, reason="disk full on /var")
    make_job("queued")
    assert row_ids(text_of(client.get("/jobs?q=disk+full"))) == [failed.id]


def test_sorting_by_type_ascending_orders_the_rows(client):
    ids = {t: make_job("queued", type=t).id for t in ["b.two", "a.one", "c.three"]}
    html = text_of(client.get("/jobs?sort=type&order=asc"))
    assert row_ids(html) == [ids["a.one"], ids["b.two"], ids["c.three"]]


def test_keyset_pages_follow_each_other_without_gaps_or_repeats(client):
    jobs.create_jobs([{"type": "demo.noop"} for _ in range(views.PAGE_SIZE + 5)])
    first = text_of(client.get("/jobs"))
    next_link = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = text_of(client.get(next_link))
    seen = row_ids(first) + row_ids(second)
    assert len(row_ids(first)) == views.PAGE_SIZE
    assert sorted(seen, reverse=True) == seen and len(set(seen)) == views.PAGE_SIZE + 5
    assert 'rel="next"' not in second


@pytest.mark.parametrize(
    "query, field",
    [("status=bogus", "status"), ("cursor=nope", "cursor"), ("sort=payload", "sort"), ("order=up", "order")],
)
def test_a_bad_table_parameter_is_a_400_naming_the_field(client, query, field):
    response = client.get(f"/jobs?{query}")
    assert response.status_code == 400
    assert f"{field}:" in text_of(response)


def test_the_counts_per_status_are_capped(client, monkeypatch):
    monkeypatch.setattr(views, "COUNT_CAP", 2)
    jobs.create_jobs([{"type": "demo.noop"} for _ in range(3)])
    make_job("failed")
    html = text_of(client.get("/jobs/counts", headers=HX))
    assert re.search(r'data-status="queued"><svg.*?</svg>Queued</span> <span class="num">2\+</span>', html)
    assert re.search(r'data-status="failed"><svg.*?</svg>Failed</span> <span class="num">1</span>', html)


def test_a_filtered_count_of_a_few_jobs_is_exact_and_of_many_is_capped_per_status(client, monkeypatch):
    """A filter of no more jobs than the cap is counted in one grouped read of its own range
    (a rare type's counts walked every job of each status); past the cap, per status as before."""
    monkeypatch.setattr(views, "COUNT_CAP", 3)
    jobs.create_jobs([{"type": "rare"} for _ in range(2)] + [{"type": "common"} for _ in range(5)])
    make_job("failed", type="rare")
    make_job("failed", type="common")
    rare = text_of(client.get("/jobs/counts?type=rare", headers=HX))
    assert re.search(r'data-status="queued"><svg.*?</svg>Queued</span> <span class="num">2</span>', rare)
    assert re.search(r'data-status="failed"><svg.*?</svg>Failed</span> <span class="num">1</span>', rare)
    assert re.search(r'data-status="running"><svg.*?</svg>Running</span> <span class="num">0</span>', rare)
    common = text_of(client.get("/jobs/counts?type=common", headers=HX))
    assert re.search(r'data-status="queued"><svg.*?</svg>Queued</span> <span class="num">3\+</span>', common)
    assert re.search(r'data-status="failed"><svg.*?</svg>Failed</span> <span class="num">1</span>', common)
    assert jobs.count_by_status(jobs.JobFilter(type="rare"), cap=3) == jobs.count_by_status(jobs.JobFilter(type="rare"))


def test_the_first_line_of_the_error_is_shown_on_a_failed_row(client):
    job = jobs.mark_failed(make_job("queued").id, reason="\nupstream timed out\nTraceback (most recent call last):")
    html = text_of(client.get("/jobs"))
    row = re.search(rf'<tr data-job-id="{job.id}".*?</tr>', html, re.S).group(0)
    assert 'class="status-failed"' in row
    assert '<span class="error-line">upstream timed out</span>' in row and "Traceback" not in row


@pytest.mark.parametrize("status", ALL)
def test_the_job_page_shows_each_status_with_only_the_allowed_buttons(client, status):
    job = make_job(status)
    html = text_of(client.get(f"/jobs/{job.id}"))
    assert has_badge(html, status, Status(status).label)
    assert buttons_in(html) == BUTTONS[status]


@pytest.mark.parametrize("status", ALL)
def test_an_htmx_poll_of_the_job_page_gets_only_its_region(client, status):
    job = make_job(status)
    html = text_of(client.get(f"/jobs/{job.id}", headers=HX))
    assert "<html" not in html
    assert html.strip().startswith('<div id="job-region"')
    assert f'data-status="{status}"' in html


def test_an_unknown_job_is_a_404_page(client):
    response = client.get("/jobs/424242")
    assert response.status_code == 404
    assert "job 424242 not found" in text_of(response)


def test_the_error_panel_shows_the_failed_attempt_with_its_output(client):
    job = make_job("running")
    jobs.fail_job(
        job.id, job.lease_token, error="exit status 3", exit_code=3, output="line one\nline two", retryable=False
    )
    html = text_of(client.get(f"/jobs/{job.id}"))
    panel = html[html.index('data-testid="error-panel"') :]
    assert "exit status 3" in panel and "line one\nline two" in panel
    assert "<dt>Exit code</dt><dd>3</dd>" in panel and "<dt>Attempt</dt><dd>1</dd>" in panel


def test_the_timeline_lists_status_changes_with_actor_and_reason(client):
    job = jobs.cancel_job(make_job("queued").id, actor="operator", reason="wrong input file")
    html = text_of(client.get(f"/jobs/{job.id}"))
    assert "<strong>operator</strong>" in html and "queued → cancelled" in html
    assert "wrong input file" in html


def test_force_start_answers_the_whole_re_rendered_job_region_and_queues_the_job(client):
    job = make_job("failed")
    response = post_action(client, job.id, "force-start")
    html = text_of(response)
    assert response.status_code == 200
    assert html.strip().startswith('<div id="job-region"') and "Force start: done." in html
    assert has_badge(html, "queued", "Queued") and "force_start: failed → queued" in html
    assert buttons_in(html) == BUTTONS["queued"]
    db.session.expire_all()
    assert jobs.get_job(job.id).status == "queued"


def test_mark_as_failed_records_the_operators_reason(client):
    job = make_job("running")
    post_action(client, job.id, "mark-failed", reason="stuck on a lock")
    db.session.expire_all()
    failed = jobs.get_job(job.id)
    assert failed.status == "failed" and failed.last_error == "stuck on a lock"


def test_cancel_cancels_a_running_job(client):
    job = make_job("running")
    assert "Cancel: done." in text_of(post_action(client, job.id, "cancel"))
    db.session.expire_all()
    assert jobs.get_job(job.id).status == "cancelled"


def test_a_refused_action_says_nothing_was_done_in_the_card(client):
    job = make_job("queued")
    token = csrf_token(client, job.id)
    jobs.cancel_job(job.id, reason="someone else was faster")
    response = client.post(f"/jobs/{job.id}/cancel", headers=dict(HX, **{"X-CSRFToken": token}))
    assert response.status_code == 200
    assert "Already cancelled — nothing was done." in text_of(response)
    assert buttons_in(text_of(response)) == ["Force start"]


def test_a_second_force_start_does_not_queue_a_second_run(client):
    job = make_job("failed")
    post_action(client, job.id, "force-start")
    html = text_of(post_action(client, job.id, "force-start"))
    assert "Already queued — nothing was done." in html
    db.session.expire_all()
    assert [e.action for e in jobs.events_of(job.id)].count("force_start") == 1


def test_without_javascript_an_action_redirects_back_with_the_message(client):
    job = make_job("failed")
    response = post_action(client, job.id, "force-start", htmx=False)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/jobs/{job.id}")
    assert "Force start: done." in text_of(client.get(f"/jobs/{job.id}"))


def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(client):
    job = make_job("running")
    response = client.post(f"/jobs/{job.id}/cancel", headers=HX)
    assert response.status_code == 400
    assert "CSRF" in text_of(response)
    db.session.expire_all()
    assert jobs.get_job(job.id).status == "running"


def test_an_unknown_action_is_a_404(client):
    job = make_job("running")
    token = csrf_token(client, job.id)
    assert client.post(f"/jobs/{job.id}/explode", headers=dict(HX, **{"X-CSRFToken": token})).status_code == 404


def test_html_in_an_error_is_shown_as_text(client):
    job = jobs.mark_failed(make_job("queued").id, reason='<script>alert("x")</script><b>bold</b>')
    for url in (f"/jobs/{job.id}", "/jobs"):
        html = text_of(client.get(url))
        assert "<script>alert" not in html and "<b>bold</b>" not in html
        assert "&lt;script&gt;alert(" in html


def test_html_in_job_output_is_shown_as_text(client):
    job = make_job("running")
    jobs.fail_job(job.id, job.lease_token, error="boom", output='<img src=x onerror="alert(1)">', retryable=False)
    html = text_of(client.get(f"/jobs/{job.id}"))
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html


def test_a_running_job_without_a_recent_heartbeat_warns_it_may_be_orphaned(client):
    job = make_job("running")
    old = utcnow() - timedelta(seconds=jobs.heartbeat_timeout(job) * 2)
    db.session.execute(update(Job).where(Job.id == job.id).values(heartbeat_at=old))
    db.session.commit()
    assert "Orphaned? No heartbeat for" in text_of(client.get(f"/jobs/{job.id}"))


class TestReadOnly:
    @pytest.fixture
    def app_config(self, app_config):
        return dict(app_config, JOBWARDEN_READ_ONLY=True)

    def test_a_read_only_dashboard_shows_no_actions(self, client):
        job = make_job("failed")
        html = text_of(client.get(f"/jobs/{job.id}"))
        assert buttons_in(html) == [] and "Read-only dashboard." in html

    def test_a_read_only_dashboard_refuses_an_action(self, client):
        job = make_job("failed")
        response = post_action(client, job.id, "force-start")
        assert response.status_code == 403
        db.session.expire_all()
        assert jobs.get_job(job.id).status == "failed"


class TestOperatorLogin:
    @pytest.fixture
    def app_config(self, app_config):
        return dict(app_config, JOBWARDEN_ADMIN_PASSWORD="s3cret")

    def login(self, client, password: str):
        html = text_of(client.get("/login"))
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        return client.post("/login", data={"password": password, "csrf_token": token})

    def test_actions_are_hidden_until_the_operator_logs_in(self, client):
        job = make_job("failed")
        assert buttons_in(text_of(client.get(f"/jobs/{job.id}"))) == []
        assert self.login(client, "s3cret").status_code == 302
        assert buttons_in(text_of(client.get(f"/jobs/{job.id}"))) == ["Force start"]

    def test_a_wrong_password_is_refused(self, client):
        job = make_job("failed")
        assert self.login(client, "guess").status_code == 401
        assert post_action(client, job.id, "force-start").status_code == 403


def test_the_type_filter_suggests_the_known_types(client):
    for job_type in ("mail.send", "video.encode", "mail.send"):
        make_job("queued", type=job_type)
    html = text_of(client.get("/jobs"))
    assert 'list="known-types"' in html
    datalist = re.search(r'<datalist id="known-types">(.*?)</datalist>', html, re.S).group(1)
    assert re.findall(r'<option value="([^"]+)">', datalist) == ["mail.send", "video.encode"]


def test_the_suggested_types_are_the_first_alphabetically_each_once(app):
    """The loose index scan behind the suggestions: each value once, in order, stopping at the limit."""
    assert jobs.distinct_values(Job.type, limit=3) == []
    for job_type in ("e.five", "b.two", "d.four", "a.one", "c.three", "b.two", "a.one"):
        make_job("completed", type=job_type)
    assert jobs.distinct_values(Job.type, limit=3) == ["a.one", "b.two", "c.three"]
    assert jobs.distinct_values(Job.type) == ["a.one", "b.two", "c.three", "d.four", "e.five"]
    assert jobs.distinct_values(Job.queue) == ["default"]


def test_the_counts_link_to_the_table_narrowed_to_each_status_keeping_the_other_filters(client):
    make_job("failed", type="mail.send")
    html = text_of(client.get("/jobs/counts?type=mail.send", headers=HX))
    assert 'href="/jobs?status=failed&amp;type=mail.send"' in html
