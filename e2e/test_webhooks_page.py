"""The /webhooks page in a real browser against a real server: add an endpoint,
rotate its secret and delete it through the in-page confirmation, and `Back`
changes nothing."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from e2e.conftest import server_settings as base_settings  # noqa: F401
from e2e.dialogs import confirm_in_page, confirmation
from webapp.store.extensions import db
from webapp.store.models import WebhookEndpoint

URL = "http://127.0.0.1:9/hooks/jobwarden?team=<ops>"


@pytest.fixture
def server_settings(base_settings):  # noqa: F811
    return {**base_settings, "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE": "1"}


def stored() -> list[tuple[int, str]]:
    db.session.rollback()  # see the server's commits
    return [(e.id, e.secret) for e in db.session.scalars(select(WebhookEndpoint))]


def ask(page: Page, webhook_id: int, button: str) -> str:
    """Click an endpoint's button; the text of the confirmation it opens."""
    page.locator(f'tr[data-webhook-id="{webhook_id}"]').get_by_role("button", name=button, exact=True).click()
    dialog = confirmation(page)
    expect(dialog).to_be_visible()
    return dialog.locator("#confirm-text").inner_text()


def test_add_rotate_and_delete_an_endpoint_through_the_in_page_confirmation(page: Page):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/webhooks")
    page.get_by_label("URL").fill(URL)
    # The address typed is seen whole, not its first 20 characters.
    assert page.get_by_label("URL").evaluate("input => input.scrollWidth <= input.clientWidth")
    page.get_by_role("button", name="Add endpoint").click()  # no event chosen
    expect(page.get_by_role("alert")).to_have_text("events: choose at least one event")
    page.get_by_label("job.failed").check()
    page.get_by_role("button", name="Add endpoint").click()
    first_secret = page.get_by_test_id("secret-value").inner_text()
    ((webhook_id, secret),) = stored()
    assert secret == first_secret

    question = ask(page, webhook_id, "Rotate secret")
    assert question.startswith(f"Rotate the secret of webhook {webhook_id} ({URL})?")
    assert "stops working at once" in question
    expect(confirmation(page).get_by_role("button", name="Back", exact=True)).to_be_focused()
    confirm_in_page(page, "Back")
    page.wait_for_timeout(500)  # time for a request that should not be made
    assert stored() == [(webhook_id, first_secret)]

    ask(page, webhook_id, "Rotate secret")
    confirm_in_page(page, "Rotate secret")
    expect(page.get_by_test_id("secret-value")).not_to_have_text(first_secret)
    rotated = page.get_by_test_id("secret-value").inner_text()
    assert stored() == [(webhook_id, rotated)]

    question = ask(page, webhook_id, "Delete")
    assert question.startswith(f"Delete webhook {webhook_id} ({URL})?")
    confirm_in_page(page, "Back")
    page.wait_for_timeout(500)
    assert stored() == [(webhook_id, rotated)]
    expect(page.locator("tr[data-webhook-id]")).to_have_count(1)

    ask(page, webhook_id, "Delete")
    confirm_in_page(page, "Delete webhook")
    expect(page.locator("tr[data-webhook-id]")).to_have_count(0)
    expect(page.get_by_role("status")).to_have_text(f"Webhook {webhook_id} removed.")
    expect(page.get_by_role("button", name="Add endpoint")).to_be_visible()  # the page, not an empty <main>
    assert stored() == []
    assert dialogs == []  # never the browser's confirm()
