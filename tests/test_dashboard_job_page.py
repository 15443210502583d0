"""The job page says what the job is (payload, result, limits, next retry) and
durations that mean what they say; every time is a <time> with its absolute time."""

from __future__ import annotations

import html as markup
import re
from datetime import timedelta

from webapp import jobs
from webapp.domain.log_lines import prefix
from webapp.domain.timeutil import utcnow
from webapp.jobs import logs
from webapp.server.dashboard import display
from webapp.store.logs import LogPiece

from tests.factories import make_job

HX = {"HX-Request": "true"}


def page_of(client, job_id: int) -> str:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def section(html: str, testid: str) -> str:
    found = re.search(rf'<(\w+)[^>]*data-testid="{testid}".*?</\1>', html, re.S)
    assert found, f"no {testid} on the page"
    return found.group(0)


def test_the_payload_is_shown_as_indented_json_and_escaped(client):
    job = make_job("queued", payload={"file": "<b>in.mp4</b>", "sizes": [1, 2]})
    payload = section(page_of(client, job.id), "job-payload")
    assert "&lt;b&gt;" in payload and "<b>" not in payload
    assert '"file": "<b>in.mp4</b>"' in markup.unescape(payload) and '"sizes": [\n    1,' in markup.unescape(payload)
    assert "<details" in payload and "Show all" not in payload


def test_a_long_payload_is_capped_with_a_show_all(client):
    job = make_job("queued", payload={"blob": "x" * (display.PAYLOAD_CAP * 2)})
    html = markup.unescape(page_of(client, job.id))
    shown = re.search(r'data-testid="job-payload".*?<pre class="output" tabindex="0">(.*?)</pre>', html, re.S).group(1)
    assert len(shown) <= display.PAYLOAD_CAP + 1 and shown.endswith("…")
    assert re.search(r"<summary>Show all \d+ characters</summary><pre[^>]*>\{\n  \"blob\": \"x{4000}\"\n\}</pre>", html)


def test_a_completed_jobs_result_priority_and_run_time_limit_are_shown(client):
    job = make_job("completed", priority=7, timeout_s=90)
    html = page_of(client, job.id)
    assert '"ok": true' in markup.unescape(section(html, "job-result"))
    assert "<dt>Priority</dt><dd>7</dd>" in html and "<dt>Run time limit</dt><dd>1m 30s</dd>" in html


def test_a_retry_waiting_out_its_backoff_shows_when_it_runs_and_no_queue_place(client):
    running = make_job("running", max_attempts=3)
    jobs.fail_job(running.id, running.lease_token, error="flaky upstream", retryable=True)
    job = jobs.get_job(running.id)
    assert job.status == "queued" and job.run_after > utcnow()
    html = page_of(client, job.id)
    retry = section(html, "next-retry")
    assert f'datetime="{job.run_after.strftime("%Y-%m-%dT%H:%M:%S")}' in retry
    assert re.search(r"data-countdown>in \d+s</time>", retry)
    assert "in queue" not in html
    assert "<dt>Ran for</dt><dd>not running</dd>" in html  # not a duration that keeps growing


def test_a_cancelled_job_shows_no_heartbeat_and_no_progress(client):
    job = jobs.cancel_job(make_job("running").id, actor="operator")
    html = page_of(client, job.id)
    assert "<dt>Heartbeat</dt>" not in html and "<dt>Progress</dt>" not in html


def test_every_time_on_the_job_page_is_a_time_element_with_its_absolute_time(client):
    job = jobs.cancel_job(make_job("running").id, actor="operator")
    html = page_of(client, job.id)
    times = re.findall(r"<time [^>]*>", html)
    assert len(times) >= 5
    for tag in times:
        assert re.search(r'datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"', tag), tag
        assert re.search(r'title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"', tag), tag
    # Outside <time> no unlabelled timestamp and no raw ISO string.
    text = re.sub(r"<time[^>]*>.*?</time>", "", html)
    assert not re.search(r"\d\d:\d\d:\d\d", text)


def test_the_run_time_of_a_queued_retry_does_not_grow_and_a_finished_job_keeps_its_own(app):
    running = make_job("running", max_attempts=3)
    jobs.fail_job(running.id, running.lease_token, error="flaky", retryable=True)
    waiting = jobs.get_job(running.id)
    assert display.run_seconds(waiting, utcnow() + timedelta(hours=1)) is None
    done = make_job("completed")
    later = utcnow() + timedelta(hours=1)
    assert display.run_seconds(done, later) == (done.finished_at - done.started_at).total_seconds()
    live = make_job("running")
    assert display.run_seconds(live, live.started_at + timedelta(seconds=30)) == 30


def test_the_table_shows_no_progress_bar_for_finished_jobs(client):
    job = make_job("completed")
    html = client.get("/jobs").get_data(as_text=True)
    row = re.search(rf'<tr data-job-id="{job.id}".*?</tr>', html, re.S).group(0)
    assert "<progress" not in row


def test_the_cancelled_badge_is_not_struck_through_and_no_glyph_needs_a_font(client):
    css = client.get("/static/dashboard.css").get_data(as_text=True)
    assert "line-through" not in css
    html = client.get(f"/jobs/{make_job('failed').id}").get_data(as_text=True)
    for glyph in "⏸ⓘ⋯⇢▶✓✕⊘▼▲":
        assert glyph not in html and glyph not in css


def test_a_running_jobs_output_tail_shows_until_its_log_holds_the_lines(client):
    """The tail of the output a heartbeat carries shows only while the attempt's log is empty
    (a worker that writes none): once the log panel holds the lines, the tail repeated them."""
    job = make_job("running")
    jobs.heartbeat(job.id, job.lease_token, output="encoding frame 1200\n")
    for page in (page_of(client, job.id), client.get(f"/jobs/{job.id}", headers=HX).get_data(as_text=True)):
        assert "Live output" in page and "encoding frame 1200" in page
    with jobs.unit_of_work():
        logs.append([LogPiece(job.id, job.lease_token, 0, f"{prefix('out')}encoding frame 1200\n")])
    for page in (page_of(client, job.id), client.get(f"/jobs/{job.id}", headers=HX).get_data(as_text=True)):
        assert "Live output" not in page
    assert "encoding frame 1200" in section(page_of(client, job.id), "job-log")
