"""Resuming the demo pipeline in a real browser: it failed at upload, the operator
clicks "Resume from step upload", and only upload runs again."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from e2e.dialogs import confirm_in_page
from webapp import jobs
from webapp.store.extensions import db

SLOW_MS = 30_000  # a worker claiming and running three steps: beyond one poll


def test_resume_from_step_upload_replays_download_and_transcode_and_completes(page: Page, start_worker):
    job = jobs.create_job(
        type="demo.pipeline", max_attempts=1, payload={"seconds_per_step": 0.2, "fail_once_at": "upload"}
    )
    start_worker("e2e-steps")
    page.goto(f"/jobs/{job.id}")
    badge = page.locator("#job-region .summary .badge[data-status]")
    expect(badge).to_have_attribute("data-status", "failed", timeout=SLOW_MS)
    expect(page.locator("[data-testid=error-panel]")).to_contain_text("step 'upload' failed (run)")

    said = "download and transcode are replayed from stored results, not run again; it runs from step upload."
    card = page.locator("#recovery-card")
    expect(card.locator('[data-testid=action-effect][data-action="resume"]')).to_contain_text(said)
    expect(card.locator('[data-testid=action-effect][data-action="force-start"]')).to_contain_text(
        f"{said} The same as Resume."
    )
    expect(card.locator('[data-testid=action-effect][data-action="restart"]')).to_contain_text(
        "discards the stored results of download and transcode: every step runs again."
    )
    page.get_by_role("button", name="Resume from step upload", exact=True).click()
    asked = confirm_in_page(page, "Resume")
    assert f"Resume job {job.id} (demo.pipeline, failed) from its first step not completed?" in asked
    assert said in asked
    expect(page.locator("#recovery-card")).to_contain_text("Resume: done.")

    expect(badge).to_have_attribute("data-status", "completed", timeout=SLOW_MS)
    steps = "section[aria-labelledby=steps-title] tbody tr"
    for name in ("download", "transcode"):
        expect(page.locator(f'{steps}[data-step="{name}"][data-step-status="replayed"]')).to_contain_text(
            "attempt 1 (replayed, not run)"
        )
    expect(page.locator(f'{steps}[data-step="upload"][data-step-status="completed"]').last).to_contain_text("attempt 2")
    expect(page.locator(".timeline")).to_contain_text("step download replayed from attempt 1")
    # the result first; attempt 1's error is history, not a red panel above it
    expect(page.locator("[data-testid=error-panel]")).to_have_count(0)
    expect(page.locator("[data-testid=earlier-errors]")).to_contain_text("Attempt 1 (failed, step upload")
    result_y = page.locator("[data-testid=job-result]").bounding_box()["y"]
    assert result_y < page.locator("[data-testid=earlier-errors]").bounding_box()["y"]
    db.session.rollback()
    assert [e.action for e in jobs.events_of(job.id) if e.kind == "status"].count("resume") == 1
    assert jobs.get_job(job.id).result["output"] == "video.upload"
