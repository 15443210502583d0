"""Alerts and /stats in a real browser against a real server whose own monitor runs: a rule
added on /alerts (confirmed removal in the page), its alert firing on /health by the next
polls, resolving into the history; a rule disabled on /alerts (its alert resolves) and
enabled again (it fires anew); and the /stats charts with their axes, legends and tables, in
light and dark."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from e2e.dialogs import confirm_in_page
from webapp import jobs
from webapp.jobs import alert_rules
from webapp.store.extensions import db


@pytest.fixture
def server_settings(server_settings: dict[str, str]) -> dict[str, str]:
    """An alert resolves once its value has stayed below the threshold for 2 s (default 300 s)."""
    return {**server_settings, "JOBWARDEN_ALERT_RESOLVE_AFTER_S": "2"}


def test_a_rule_added_on_the_page_fires_on_health_and_resolves_into_the_history(page: Page):
    job = jobs.create_job(type="report.build", queue="reports")
    page.goto("/alerts")
    form = page.locator("form").filter(has=page.get_by_role("button", name="Add rule"))
    form.get_by_label("Kind").select_option("queue_latency")
    form.get_by_label("Subject").fill("reports")
    form.get_by_label("Threshold").fill("many")
    form.get_by_role("button", name="Add rule").click()
    expect(page.get_by_test_id("rule-error")).to_contain_text("threshold: must be a number")
    form = page.locator("form").filter(has=page.get_by_role("button", name="Add rule"))
    form.get_by_label("Threshold").fill("1")
    form.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status")).to_contain_text("queue_latency of queue reports ≥ 1 s")

    page.goto("/health")
    firing = page.get_by_test_id("firing-alerts")
    expect(firing).to_contain_text("queue_latency of queue reports is", timeout=15_000)
    expect(firing.locator("time")).to_have_count(1)
    expect(page.get_by_test_id("health-summary")).to_have_text("Attention needed.")

    jobs.cancel_job(job.id, reason="e2e")
    db.session.commit()
    expect(page.get_by_test_id("alert-history")).to_contain_text(
        "resolved: queue_latency of queue reports", timeout=15_000
    )
    expect(page.get_by_test_id("firing-alerts")).to_have_count(0)

    page.goto("/alerts")
    row = page.locator("tr[data-rule-id]").filter(has_text="queue reports")
    row.get_by_role("button", name="Remove").click()
    assert confirm_in_page(page, "Remove rule").startswith("Remove rule")
    expect(page.get_by_role("status")).to_contain_text("removed")
    expect(page.locator("tr[data-rule-id]")).to_have_count(0)


def test_a_rule_disabled_on_the_page_resolves_its_alert_and_enabled_again_fires_anew(page: Page):
    jobs.create_job(type="import.run", queue="imports")
    rule = alert_rules.add("queue_latency", "imports", 1)
    db.session.commit()
    page.goto("/health")
    expect(page.get_by_test_id("firing-alerts")).to_contain_text("queue_latency of queue imports is", timeout=15_000)

    page.goto("/alerts")
    row = page.locator(f'tr[data-rule-id="{rule.id}"]')
    expect(row.get_by_test_id("rule-state")).to_contain_text("1 firing")
    row.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_have_text(f"Rule {rule.id} disabled: 1 firing alert(s) resolved.")
    row = page.locator(f'tr[data-rule-id="{rule.id}"]')
    expect(row.get_by_test_id("rule-state")).to_have_text("disabled")

    page.goto("/health")
    expect(page.get_by_test_id("firing-alerts")).to_have_count(0)
    expect(page.get_by_test_id("alert-history")).to_contain_text("the rule queue_latency of queue imports was disabled")

    page.goto("/alerts")
    page.locator(f'tr[data-rule-id="{rule.id}"]').get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status")).to_contain_text(f"Rule {rule.id} enabled")
    page.goto("/health")
    expect(page.get_by_test_id("firing-alerts")).to_contain_text("queue_latency of queue imports is", timeout=15_000)


def test_the_stats_charts_have_axes_legends_and_tables_in_light_and_dark(page: Page, browser, server):
    for _ in range(3):
        jobs.create_job(type="video", queue="media")
    page.goto("/stats?window=24h&queue=media")
    for key in ("throughput", "failure-rate", "latency", "depth"):
        chart = page.get_by_test_id(f"chart-{key}")
        svg = chart.get_by_role("img")
        expect(svg).to_be_visible()
        assert svg.get_attribute("aria-labelledby")
        assert chart.locator(".tick-value").count() >= 3 and chart.locator(".tick-time").count() >= 4
        # The axis title is whole inside its chart ("failed among completed and failed" was cut off).
        title, box = chart.locator(".axis-title").bounding_box(), svg.bounding_box()
        assert title is not None and box is not None
        assert box["y"] <= title["y"] and title["y"] + title["height"] <= box["y"] + box["height"], key
        chart.get_by_text("Table of").click()
        expect(chart.get_by_test_id(f"table-{key}")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("queue media")

    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(base_url=server.url, color_scheme=scheme)
        themed = context.new_page()
        themed.goto("/stats?window=1h")
        tick = themed.get_by_test_id("chart-throughput").locator(".tick-value").first
        colours[scheme] = tick.evaluate("node => getComputedStyle(node).fill")
        context.close()
    assert colours["light"] != colours["dark"]
