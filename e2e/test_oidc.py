"""OpenID Connect sign-in in a real browser against a real provider: panva's oidc-provider
(pinned in package.json) run by e2e/oidc_provider.mjs on loopback. The authorization
code flow with PKCE, the role taken from the provider's claim, the person named in the
job's timeline and the audit trail, and logout."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.factories import make_job
from tests.support.server import Server, free_port, running_server

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is needed to run the OpenID Connect provider")


@pytest.fixture
def provider_port() -> int:
    return free_port()


@pytest.fixture
def server(app, database_url, tmp_path, provider_port) -> Iterator[Server]:
    settings = {
        "JOBWARDEN_OIDC_ISSUER": f"http://127.0.0.1:{provider_port}",
        "JOBWARDEN_OIDC_CLIENT_ID": "jobwarden",
        "JOBWARDEN_OIDC_CLIENT_SECRET": "jobwarden-test-secret",
    }
    with running_server(database_url, tmp_path / "server.log", **settings) as running:
        yield running


@pytest.fixture
def provider(server, provider_port) -> Iterator[str]:
    process = subprocess.Popen(
        [NODE, str(HERE / "oidc_provider.mjs"), str(provider_port), f"{server.url}/login/oidc/callback"],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{provider_port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def sign_in_at_provider(page: Page, account: str) -> None:
    page.goto("/login")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    expect(page).to_have_title("Provider sign-in")
    page.get_by_label("Account").fill(account)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in at the provider").click()


def test_an_admin_signs_in_through_the_provider_acts_and_logs_out(page: Page, provider, app):
    job = make_job("failed")
    sign_in_at_provider(page, "boss")
    expect(page.get_by_test_id("signed-in-as")).to_have_text("boss (admin)")
    page.goto(f"/jobs/{job.id}")
    page.get_by_role("button", name="Force start").click()
    page.get_by_test_id("confirm-action").click()
    expect(page.locator(".badge").first).not_to_have_attribute("data-status", "failed")
    page.goto("/audit")
    expect(page.get_by_test_id("audit-table")).to_contain_text("POST /jobs/<job_id>/force-start")
    expect(page.get_by_test_id("audit-table")).to_contain_text("oidc")
    page.goto(f"/jobs/{job.id}")
    expect(page.locator("body")).to_contain_text("boss")  # the timeline names the person

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.goto("/audit")
    expect(page).to_have_url(f"{page.url.split('/login')[0]}/login?next=/audit")


def test_a_viewer_from_the_provider_sees_no_buttons(page: Page, provider, app):
    job = make_job("failed")
    sign_in_at_provider(page, "vera")
    expect(page.get_by_test_id("signed-in-as")).to_have_text("vera (viewer)")
    page.goto(f"/jobs/{job.id}")
    expect(page.get_by_role("button", name="Force start")).to_have_count(0)
    assert page.request.post(f"/jobs/{job.id}/force-start").status in (400, 403)
