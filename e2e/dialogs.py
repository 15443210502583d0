"""The dashboard's in-page confirmation, as the browser tests answer it."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def confirmation(page: Page):
    """The in-page confirmation dialog (templates/includes/confirm_dialog.html)."""
    return page.locator("dialog#confirm-dialog")


def confirm_in_page(page: Page, button: str) -> str:
    """Answer the open in-page confirmation with its confirming button (named `button`); its text."""
    dialog = confirmation(page)
    expect(dialog).to_be_visible()
    text = dialog.locator("#confirm-text").inner_text()
    dialog.get_by_role("button", name=button, exact=True).click()
    expect(dialog).to_be_hidden()
    return text
