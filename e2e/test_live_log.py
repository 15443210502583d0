"""The job page's log in a real browser, with a real worker: a printed line appears within
about a second, without a reload; scrolling up pauses the following and says so; hostile
text stays text."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests
from playwright.sync_api import Page, expect

from webapp import jobs
from webapp.domain.log_lines import prefix
from webapp.jobs import logs
from webapp.store.extensions import db
from webapp.store.logs import LogPiece

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job


@pytest.fixture
def server_settings(server_settings):
    """The monitor leaves the tests' hand-made running jobs (no worker heartbeats them) running."""
    return {**server_settings, "JOBWARDEN_HEARTBEAT_TIMEOUT": "600"}


def test_a_printed_line_appears_on_the_page_within_a_second(page: Page, start_worker):
    job = jobs.create_job(type="demo.chatty", payload={"lines": 400, "pause": 0.05})
    page.goto(f"/jobs/{job.id}")
    page.evaluate("window.__notReloaded = true")
    log = page.get_by_test_id("job-log")
    start_worker("e2e-log")
    expect(log).to_contain_text("processing item 1 of 400", timeout=15_000)
    # From now on each new line must show within ~1 s of the worker reading it.
    lags = []
    for _ in range(5):
        shown = page.evaluate(
            "() => Array.from(document.querySelectorAll('[data-testid=job-log] time')).map(t => t.getAttribute('datetime')).pop()"
        )
        lags.append(time.time() - datetime.fromisoformat(shown.replace("Z", "+00:00")).timestamp())
        time.sleep(0.3)
    assert max(lags) < 1.5, f"the newest line shown was {max(lags):.2f} s old"
    assert "\x1b" not in log.inner_text() and "ok item 5" in log.inner_text()
    expect(page.get_by_test_id("log-follow")).to_have_attribute("data-state", "following")
    # Scrolled up, it stops following and says so; lines still arrive below.
    log.evaluate("element => { element.scrollTop = 0; }")
    expect(page.get_by_test_id("log-follow")).to_have_attribute("data-state", "paused")
    expect(page.get_by_test_id("log-follow")).to_contain_text("scroll to the end")
    top = log.evaluate("element => element.scrollTop")
    time.sleep(1.2)
    assert log.evaluate("element => element.scrollTop") == top
    log.evaluate("element => { element.scrollTop = element.scrollHeight; }")
    expect(page.get_by_test_id("log-follow")).to_have_attribute("data-state", "following")
    assert page.evaluate("window.__notReloaded === true")


def test_hostile_lines_arriving_live_stay_text(page: Page):
    job = make_job("running")
    page.goto(f"/jobs/{job.id}")
    page.evaluate("window.__pwned = false")
    hostile = '<img src=x onerror="window.__pwned = true"><script>window.__pwned = true</script>'
    with jobs.unit_of_work():
        logs.append([LogPiece(job.id, job.lease_token, 0, f"{prefix('out')}{hostile}\n")])
    db.session.commit()
    log = page.get_by_test_id("job-log")
    expect(log).to_contain_text(hostile)
    assert page.locator("[data-testid=job-log] img, [data-testid=job-log] script").count() == 0
    assert page.evaluate("window.__pwned") is False


# Holds the log's next answer that brings lines until `window.__releaseLog()`, read in full
# beforehand, so the release delivers it within the same task as what the test does just before.
# `__asks` counts the asks sent through it: an ask sent before it was installed is not held.
HOLD_LOG_LINES = """() => {
  const fetchNow = window.fetch.bind(window);
  window.__heldLog = [];
  window.__asks = 0;
  window.fetch = (...request) => (window.__asks += 1, fetchNow(...request)).then(response => response.text().then(text => {
    const answer = {ok: response.ok, status: response.status, headers: response.headers, text: () => Promise.resolve(text)};
    if (!text.includes('class="log-line"')) return answer;
    return new Promise(deliver => window.__heldLog.push(() => deliver(answer)));
  }));
  window.__releaseLog = () => window.__heldLog.splice(0).forEach(deliver => deliver());
}"""


def test_scrolling_to_the_end_as_new_lines_arrive_follows_again(page: Page):
    """The new lines may land before the browser reports the scroll (one frame later): the
    reader still reached the end and is followed, not left paused with no way back."""
    job = make_job("running")

    def write(lines: range, start: int) -> int:
        text = "".join(f"{prefix('out')}line {n}\n" for n in lines)
        with jobs.unit_of_work():
            logs.append([LogPiece(job.id, job.lease_token, start, text)])
        db.session.commit()
        return start + len(text.encode())

    written = write(range(200), 0)
    page.goto(f"/jobs/{job.id}")
    log, state = page.get_by_test_id("job-log"), page.get_by_test_id("log-follow")
    expect(log).to_contain_text("line 199")
    log.evaluate("element => { element.scrollTop = 0; }")
    expect(state).to_have_attribute("data-state", "paused")
    page.evaluate(HOLD_LOG_LINES)
    # Asks go one at a time: once one went through the hold, none sent before it is in flight
    # to bring the new lines unheld (one did, in a loaded full run).
    page.wait_for_function("() => window.__asks > 0")
    write(range(200, 260), written)
    page.wait_for_function("() => window.__heldLog.length > 0")
    log.evaluate("element => { element.scrollTop = element.scrollHeight; window.__releaseLog(); }")
    expect(log).to_contain_text("line 259")
    expect(state).to_have_attribute("data-state", "following")
    assert log.evaluate("element => element.scrollHeight - element.scrollTop - element.clientHeight") <= 4


def _write(job_id: int, lease_token: str, text: str) -> None:
    with jobs.unit_of_work():
        logs.append([LogPiece(job_id, lease_token, 0, "".join(f"{prefix('out')}{line}\n" for line in text.split("|")))])
    db.session.commit()


def _retry_into_a_second_attempt(job_id: int, first_token: str) -> str:
    """Attempt 1 fails and is retried at once; a worker claims and starts attempt 2."""
    failed = jobs.fail_job(job_id, first_token, error="first attempt failed", retry_in_s=0)
    assert failed.status == "queued"
    (claimed,) = jobs.claim_jobs("factory-worker", types=[failed.type])
    jobs.start_job(job_id, claimed.lease_token)
    db.session.commit()
    return claimed.lease_token


def test_the_log_follows_the_next_attempt_when_the_one_shown_ends_and_the_job_runs_again(page: Page):
    """A retried job: the reader watching attempt 1's log sees attempt 2's lines arrive in the
    same panel, without a reload. Before, the panel said "This attempt has ended" and stayed."""
    job = make_job("running", max_attempts=3)
    _write(job.id, job.lease_token, "first try line|first try fails")
    page.goto(f"/jobs/{job.id}")
    page.evaluate("window.__notReloaded = true")
    log, state = page.get_by_test_id("job-log"), page.get_by_test_id("log-follow")
    expect(log).to_contain_text("first try fails")
    second_token = _retry_into_a_second_attempt(job.id, job.lease_token)
    _write(job.id, second_token, "second try line")
    expect(page.locator("#log-title")).to_contain_text("attempt 2", timeout=10_000)
    expect(log).to_contain_text("second try line")
    expect(log).not_to_contain_text("first try")
    expect(state).to_have_attribute("data-state", "following")
    expect(page.locator("#log .log-tools a", has_text="1")).to_have_attribute(
        "href", f"/jobs/{job.id}?log_attempt=1#log"
    )
    # Followed live from its start: a line written now still arrives.
    with jobs.unit_of_work():
        written = len(f"{prefix('out')}second try line\n".encode())
        logs.append([LogPiece(job.id, second_token, written, f"{prefix('out')}second try goes on\n")])
    db.session.commit()
    expect(log).to_contain_text("second try goes on")
    assert page.evaluate("window.__notReloaded === true")


def test_an_attempt_the_reader_chose_stays_and_the_page_says_a_newer_one_began(page: Page):
    job = make_job("running", max_attempts=3)
    _write(job.id, job.lease_token, "first try line")
    page.goto(f"/jobs/{job.id}?log_attempt=1")
    log, state = page.get_by_test_id("job-log"), page.get_by_test_id("log-follow")
    expect(log).to_contain_text("first try line")
    second_token = _retry_into_a_second_attempt(job.id, job.lease_token)
    _write(job.id, second_token, "second try line")
    expect(state).to_have_attribute("data-state", "newer-2", timeout=10_000)
    expect(state).to_contain_text("attempt 2 has begun")
    expect(log).to_contain_text("first try line")
    expect(page.locator("#log-title")).to_contain_text("attempt 1")
    state.get_by_role("link", name="follow its log").click()
    expect(page.locator("#log-title")).to_contain_text("attempt 2")
    expect(log).to_contain_text("second try line")


def test_a_cancelled_attempt_still_followed_is_not_called_running(page: Page, server):
    """Cancelled while it runs, the attempt's process may write until its worker confirms the
    stop: the page goes on following, and says why, not "the running attempt"; the
    confirmation ends the following."""
    job = make_job("running")
    _write(job.id, job.lease_token, "working")
    page.goto(f"/jobs/{job.id}")
    state = page.get_by_test_id("log-follow")
    expect(state).to_have_text("Following the running attempt.")
    jobs.cancel_job(job.id, reason="operator stops it")
    db.session.commit()
    expect(state).to_contain_text("its process may still write until its worker confirms the stop", timeout=10_000)
    confirmed = requests.post(
        f"{server.url}/api/internal/jobs/{job.id}/stopped",
        json={"lease_token": job.lease_token, "attempt": 1},
        headers={"Authorization": f"Bearer {INTERNAL_KEY}"},
        timeout=10,
    )
    assert confirmed.status_code == 200, confirmed.text
    expect(state).to_have_text("This attempt has ended.", timeout=10_000)
