"""Every dashboard table fits a 1280 px window without sideways scrolling, with the long
data real deployments have (long job types, worker ids with host names, multi-line
errors, long webhook URLs): long text wraps inside its cell instead of pushing the
columns that matter (status, updated, state, last heartbeat) off-screen. And at a phone's
width the pages still fit the screen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from webapp import jobs
from webapp.jobs import alert_rules, audit, queues, schedules
from webapp.store.extensions import db
from webapp.webhooks import endpoints
from webapp.webhooks.events import EVENT_TYPES

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
LONG_TYPE = "media.video.transcode-4k-hdr-dolby-vision-with-burned-in-subtitles"
LONG_WORKER = "worker-ip-10-0-112-234.eu-west-1.compute.internal-pid-31415-9f8e7d6c5b4a"
LONG_STEP = "upload-rendition-to-object-storage-with-multipart-retries"
LONG_ERROR = (
    "subprocess.CalledProcessError: Command '['ffmpeg', '-i', '/var/lib/jobs/input/2026-12-06/"
    "a-very-long-file-name-without-spaces-that-goes-on-and-on.mov', '-c:v', 'libx265']' "
    "returned non-zero exit status 1.\n" + "frame=1234 fps=25 q=28.0 size=4096kB " * 10
)
LONG_URL = "https://93.184.215.14/hooks/jobwarden/" + "x" * 120 + "?team=platform-operations&channel=incidents"
LONG_QUEUE = "gpu-a100-80gb-eu-west-1-spot-instances-for-overnight-batch-rendering"
LONG_SCHEDULE = "nightly-transcode-of-every-uploaded-master-into-all-delivery-renditions"


def seed_long_data() -> int:
    """Running, failed and queued jobs, a worker and a webhook, all with long names; the failed job's id."""
    jobs.register_worker(
        LONG_WORKER, hostname="ip-10-0-112-234.eu-west-1.compute.internal", pid=31415, types=[LONG_TYPE], concurrency=8
    )
    for n in range(6):
        job = jobs.create_job(type=f"{LONG_TYPE}-{n}", max_attempts=1)
        (claimed,) = jobs.claim_jobs(LONG_WORKER, types=[job.type])
        jobs.start_job(job.id, claimed.lease_token)
        jobs.heartbeat(job.id, claimed.lease_token, progress=42.5, stage="encoding-second-pass", current_step=LONG_STEP)
        if n % 2:
            jobs.fail_job(job.id, claimed.lease_token, error=LONG_ERROR, exit_code=1, retryable=False)
            failed_id = job.id
    for n in range(4):
        jobs.create_job(type=f"{LONG_TYPE}-queued-{n}", queue=LONG_QUEUE)
    endpoints.create(LONG_URL, list(EVENT_TYPES))
    queues.set_limits(LONG_QUEUE, {"concurrency": 2, "key_concurrency": 1}, actor=LONG_WORKER)
    schedules.create(LONG_SCHEDULE, {"every_s": 3600, "type": LONG_TYPE}, source="api", actor=LONG_WORKER)
    alert_rules.add("failure_rate", f"queue:{LONG_QUEUE}", 0.5)
    alert_rules.add("queue_latency", LONG_QUEUE, 600)
    audit.record(actor=LONG_WORKER, via="token", action="jobs cancel", target=LONG_TYPE, reason=LONG_ERROR)
    db.session.remove()
    return failed_id


def new_page(browser: Browser, server, viewport: dict) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url, viewport=viewport)
    yield context.new_page()
    context.close()


@pytest.fixture
def desktop_page(browser, server) -> Iterator[Page]:
    yield from new_page(browser, server, DESKTOP)


@pytest.fixture
def phone_page(browser, server) -> Iterator[Page]:
    yield from new_page(browser, server, PHONE)


def overflows(page: Page) -> list[str]:
    """What scrolls sideways: the page itself, or a table wider than the box it sits in."""
    return page.evaluate(
        """() => {
          const found = [];
          const root = document.scrollingElement;
          if (root.scrollWidth > root.clientWidth) found.push(`page ${root.scrollWidth} > ${root.clientWidth}`);
          for (const table of document.querySelectorAll("main table")) {
            const box = table.parentElement;
            if (table.scrollWidth > box.clientWidth || box.scrollWidth > box.clientWidth) {
              const heads = [...table.querySelectorAll("thead th")].map(th => th.textContent.trim()).join("|");
              found.push(`table [${heads}] ${table.scrollWidth} in ${box.clientWidth}`);
            }
          }
          return found;
        }"""
    )


SHORT_WORD = 12  # characters: a word this short that is split across lines squeezed its column


def broken_words(page: Page) -> list[str]:
    """Short words in tables the browser split across lines (a column squeezed to "Pau|se");
    a hyphen or a slash is a place to break, so words with one are left out."""
    return page.evaluate(
        """(shortest) => {
          const found = [];
          const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            if (!node.parentElement.closest("table")) continue;
            for (const match of node.data.matchAll(/\\S+/g)) {
              if (match[0].length > shortest || /[-/]/.test(match[0])) continue;
              const range = document.createRange();
              range.setStart(node, match.index);
              range.setEnd(node, match.index + match[0].length);
              const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
              if (lines.size > 1) found.push(match[0]);
            }
          }
          return found;
        }""",
        SHORT_WORD,
    )


def pages(failed_id: int) -> list[str]:
    return [
        "/jobs",
        "/health",
        "/webhooks",
        f"/jobs/{failed_id}",
        "/stats",
        "/queues",
        "/schedules",
        "/alerts",
        "/audit",
    ]


def test_at_1280_px_no_table_scrolls_sideways_with_long_data(desktop_page: Page):
    failed_id = seed_long_data()
    found: list[str] = []
    for path in pages(failed_id):
        desktop_page.goto(path)
        assert desktop_page.locator("main table").count() > 0, path
        found += [f"{path}: {o}" for o in overflows(desktop_page)]
        found += [f"{path}: {word!r} split across lines" for word in broken_words(desktop_page)]
    assert found == [], "\n".join(found)
    # The columns that matter are on screen: the jobs table's last column and the workers table's state and heartbeat.
    desktop_page.goto("/jobs")
    assert desktop_page.locator("table.jobs thead th").last.bounding_box()["x"] < DESKTOP["width"]
    desktop_page.goto("/health")
    workers = desktop_page.locator("table:has(th:text-is('Busy / slots')) thead th")
    assert workers.all_inner_texts()[:3] == ["Worker", "State", "Last heartbeat"]  # what an incident needs, first
    for heading in ("State", "Last heartbeat"):
        workers_section = desktop_page.locator("section[aria-labelledby='workers-title']")
        box = workers_section.get_by_role("columnheader", name=heading, exact=True).bounding_box()
        assert box is not None and box["x"] + box["width"] <= DESKTOP["width"], heading


def test_at_phone_width_the_pages_fit_the_screen_with_long_data(phone_page: Page):
    failed_id = seed_long_data()
    for path in pages(failed_id):
        phone_page.goto(path)
        root = phone_page.evaluate("[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
        assert root[0] <= root[1], (path, root)


def retried_once(error: str) -> int:
    """A job whose first attempt failed with `error` and whose second completed, on a worker
    named as the CLI names them."""
    job = jobs.create_job(type="demo.rate_limited", max_attempts=3)
    for attempt in (1, 2):
        (claimed,) = jobs.claim_jobs("vm-6678-72ecac", types=["demo.rate_limited"])
        jobs.start_job(job.id, claimed.lease_token)
        if attempt == 1:
            jobs.fail_job(job.id, claimed.lease_token, error=error, retryable=True)
            jobs.run_now(job.id)
        else:
            jobs.complete_job(job.id, claimed.lease_token, result={"attempt": 2})
    return job.id


TRACEBACK = "\n".join(
    ["Traceback (most recent call last):"]
    + [
        f'  File "/srv/app/webapp/worker/module_{n}.py", line {n * 40}, in _execute\n    result = call(ctx)'
        for n in range(6)
    ]
    + ["RuntimeError: upload failed (asked to by the payload)"]
)


def failed_in_a_step() -> int:
    """demo.pipeline as `make run` shows it: two steps done, the third failed with an error."""
    job = jobs.create_job(type="demo.pipeline", max_attempts=1)
    (claimed,) = jobs.claim_jobs("vm-25752-f1abd8", types=["demo.pipeline"])
    jobs.start_job(job.id, claimed.lease_token)
    token = claimed.lease_token
    jobs.record_step(job.id, token, name="download", event="started", attempt=1)
    jobs.record_step(job.id, token, name="download", event="completed", attempt=1, result={"ok": True})
    crashed = "RuntimeError: transcode: encoder crashed (try 1)"
    jobs.record_step(job.id, token, name="transcode", event="started", attempt=1, step_attempt=1)
    jobs.record_step(job.id, token, name="transcode", event="retrying", attempt=1, step_attempt=1, error=crashed)
    jobs.record_step(job.id, token, name="transcode", event="started", attempt=1, step_attempt=2)
    jobs.record_step(job.id, token, name="transcode", event="completed", attempt=1, step_attempt=2, result={"ok": True})
    error = "RuntimeError: upload failed (asked to by the payload)"
    jobs.record_step(job.id, token, name="upload", event="started", attempt=1)
    jobs.record_step(job.id, token, name="upload", event="failed", attempt=1, phase="run", error=error)
    jobs.fail_job(job.id, token, error=f"step 'upload' failed (run): {error}", output=TRACEBACK, retryable=False)
    return job.id


def test_at_1280_px_short_names_and_states_stay_whole(desktop_page: Page):
    """An ordinary install (the queues `default` and a limited `gpu`, a schedule, a webhook):
    no column is squeezed until its short words split, as `default` and `active` once did
    beside the queues' limits."""
    jobs.create_job(type="demo.sleep")
    jobs.create_job(type="demo.sleep", queue="gpu")
    queues.set_limits("gpu", {"concurrency": 1, "rate_limit": {"limit": 10, "period_s": 60}}, actor="ops")
    schedules.create("nightly", {"every_s": 3600, "type": "demo.sleep"}, source="api", actor="ops")
    endpoints.create("https://93.184.215.14/jobwarden", list(EVENT_TYPES))
    audit.record(actor="ops", via="token", action="jobs cancel", target="demo.sleep")
    retried = retried_once("429 Too Many Requests: the upstream asks to retry after 300 s")
    stepped = failed_in_a_step()
    db.session.remove()
    found: list[str] = []
    pages = ("/jobs", "/queues", "/schedules", "/webhooks", "/audit", "/alerts", "/health", f"/jobs/{retried}")
    for path in (*pages, f"/jobs/{stepped}"):
        desktop_page.goto(path)
        found += [f"{path}: {word!r} split across lines" for word in broken_words(desktop_page)]
    assert found == [], "\n".join(found)


def test_at_1280_px_a_busy_jobs_table_breaks_job_types_only_after_their_dots(desktop_page: Page):
    """The jobs table as `make run` shows it (failed jobs with their errors, running ones with
    progress, a limited queue): its crowded columns once broke "demo.sleep" as "demo.slee|p".
    A type may wrap after a dot or an underscore, never inside a part."""
    worker = "vm-20178-ffa0e5"

    def ran(job_type: str, **spec) -> tuple[int, str]:
        job = jobs.create_job(type=job_type, **spec)
        (claimed,) = jobs.claim_jobs(worker, types=[job_type])
        jobs.start_job(job.id, claimed.lease_token)
        return job.id, claimed.lease_token

    for step in ("upload", "transcode"):
        job_id, token = ran("demo.pipeline", max_attempts=1)
        error = f"step '{step}' failed (run): RuntimeError: {step} failed (asked to by the payload)"
        jobs.fail_job(job_id, token, error=error, retryable=False)
    job_id, token = ran("demo.chatty")
    jobs.heartbeat(job_id, token, progress=6.0, stage="checkpoint 60 of 3000")
    job_id, token = ran("demo.rate_limited", max_attempts=3)
    jobs.fail_job(job_id, token, error="429 Too Many Requests", retry_in_s=300)
    for _ in range(3):
        jobs.create_job(type="demo.sleep", queue="gpu")
    jobs.create_job(type="demo.sleep")
    db.session.remove()
    desktop_page.goto("/jobs")
    split = desktop_page.evaluate(
        """() => {
          const found = [];
          for (const cell of document.querySelectorAll("table.jobs td.type")) {
            for (const node of cell.childNodes) {
              if (node.nodeType !== Node.TEXT_NODE || !node.data.trim()) continue;
              const range = document.createRange();
              range.selectNodeContents(node);
              const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
              if (lines.size > 1) found.push(cell.textContent.trim());
            }
          }
          return found;
        }"""
    )
    assert split == []
    assert overflows(desktop_page) == []
