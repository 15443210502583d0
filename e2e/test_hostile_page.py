"""A hostile page in the operator's browser cannot act on Jobwarden.

The page is served from another loopback origin (`localhost:<port>` is another site
than the server's `127.0.0.1`; `127.0.0.1:<other port>` is the same site, another
origin). It auto-submits forms in every encoding an HTML form has, and fires a
no-cors fetch, at the JSON API and the dashboard; with no admin password (the
default) every one reaches the server and is refused, and the job is unchanged.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page

from webapp import jobs
from webapp.store.extensions import db

from tests.factories import make_job

ENCTYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


class HostileSite:
    """A tiny web server on loopback that serves the pages a test puts in `pages`."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not here").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hostile() -> Iterator[HostileSite]:
    site = HostileSite()
    yield site
    site.close()


def auto_submitting_form(action: str, enctype: str, with_field: bool) -> str:
    """With no field a form posts an empty body (urlencoded, text/plain), which once passed as "no JSON"."""
    # For text/plain the classic trick: name + "=" + value reads as JSON.
    field = (
        (
            '<input name=\'{"reason": "pwned", "x": "\' value=\'"}\'>'
            if enctype == "text/plain"
            else '<input name="reason" value="pwned">'
        )
        if with_field
        else ""
    )
    return (
        f'<html><body><form id="f" method="post" action="{html.escape(action)}" enctype="{enctype}">{field}</form>'
        '<script>document.getElementById("f").submit()</script></body></html>'
    )


def status_of(job_id: int) -> str:
    db.session.rollback()
    return jobs.get_job(job_id).status


@pytest.mark.parametrize("hostile_host", ["localhost", "127.0.0.1"], ids=["cross-site", "same-site-other-port"])
def test_a_hostile_page_cannot_change_a_job_through_the_operators_browser(page: Page, server, hostile, hostile_host):
    job = make_job("queued")
    origin = f"http://{hostile_host}:{hostile.port}"
    targets = [f"{server.url}/api/jobs/{job.id}/{action}" for action in ("mark-failed", "cancel")]
    targets += [f"{server.url}/api/admin/cleanup", f"{server.url}/jobs/{job.id}/mark-failed"]
    forms = [(t, e, f) for t in targets for e in ENCTYPES for f in (False, True)]
    for number, (target, enctype, with_field) in enumerate(forms):
        hostile.pages[f"/form{number}"] = auto_submitting_form(target, enctype, with_field)
        with page.expect_response(lambda response, target=target: response.url == target) as answer:
            page.goto(f"{origin}/form{number}")
        assert answer.value.status in (400, 403), (target, enctype, with_field, answer.value.status)
        assert answer.value.status == 403 or "/api/" not in target  # the dashboard's CSRF check may answer first
        assert status_of(job.id) == "queued", (target, enctype, with_field)

    # A script on the hostile page: a "simple" cross-origin request needs no preflight and is sent.
    hostile.pages["/fetch"] = (
        "<html><body><script>"
        f"fetch({server.url + f'/api/jobs/{job.id}/mark-failed'!r}, {{method: 'POST', mode: 'no-cors', "
        "credentials: 'include', headers: {'Content-Type': 'text/plain'}, body: ''})"
        ".then(() => document.title = 'sent', () => document.title = 'failed')"
        "</script></body></html>"
    )
    with page.expect_response(lambda response: response.url.endswith(f"/api/jobs/{job.id}/mark-failed")) as answer:
        page.goto(f"{origin}/fetch")
    assert answer.value.status == 403
    assert status_of(job.id) == "queued"


def test_the_dashboards_own_page_still_acts_with_json_from_the_same_origin(page: Page, server):
    """The control: the same browser, on Jobwarden's own origin, changes the job."""
    job = make_job("queued")
    page.goto(f"{server.url}/jobs/{job.id}")
    status = page.evaluate(
        "async (url) => (await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},"
        ' body: \'{"reason": "by the operator"}\'})).status',
        f"/api/jobs/{job.id}/mark-failed",
    )
    assert status == 200
    assert status_of(job.id) == "failed"
