"""Dashboard login sessions end for real: logout ends every session (a replayed old
cookie does not act), a new admin password ends them, and each expires after
JOBWARDEN_SESSION_LIFETIME_S whatever its cookie says."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
import requests

from webapp import config as settings
from webapp import jobs
from webapp.store.extensions import db

from tests.factories import make_job
from tests.support.server import running_server

PASSWORD = "correct horse battery staple"


class Browser:
    """An operator's browser (a cookie jar) on the real server."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def post(self, path: str, **data: str) -> requests.Response:
        return self.http.post(self.url + path, data=data, allow_redirects=False, timeout=10)

    def login(self, password: str = PASSWORD) -> requests.Response:
        token = token_in(self.http.get(f"{self.url}/login", timeout=10).text)
        return self.post("/login", password=password, csrf_token=token)

    def page(self, job_id: int) -> str:
        return self.http.get(f"{self.url}/jobs/{job_id}", timeout=10).text

    def token(self, job_id: int) -> str:
        """The CSRF token of the logged-in session, read from the job page's action form."""
        html = self.page(job_id)
        assert ">Force start</button>" in html, "the login did not take"
        return token_in(html)

    def force_start(self, job_id: int, token: str) -> int:
        return self.post(f"/jobs/{job_id}/force-start", csrf_token=token).status_code

    @property
    def cookie(self) -> str:
        return self.http.cookies["session"]

    @cookie.setter
    def cookie(self, value: str) -> None:
        self.http.cookies.clear()
        self.http.cookies.set("session", value)


def token_in(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def status_of(job_id: int) -> str:
    db.session.expire_all()
    return jobs.get_job(job_id).status


@pytest.fixture
def server_settings() -> dict[str, str]:
    return {"JOBWARDEN_ADMIN_PASSWORD": PASSWORD}


@pytest.fixture
def server(app, database_url, tmp_path, server_settings):
    with running_server(database_url, tmp_path / "server.log", **server_settings) as running:
        yield running


def test_logout_ends_the_session_and_a_replayed_old_cookie_does_not_act(server):
    job = make_job("failed")
    browser = Browser(server.url)
    assert browser.login().status_code == 302
    token = browser.token(job.id)
    old_cookie = browser.cookie

    assert browser.post("/logout", csrf_token=token).status_code == 302
    browser.cookie = old_cookie  # an attacker who kept the cookie, or a stale tab

    assert browser.force_start(job.id, token) == 403
    assert status_of(job.id) == "failed"
    assert ">Force start</button>" not in browser.page(job.id)


def test_logout_in_one_browser_ends_the_sessions_of_the_others(server):
    job = make_job("failed")
    first, second = Browser(server.url), Browser(server.url)
    first.login()
    second.login()
    second_token = second.token(job.id)
    first.post("/logout", csrf_token=first.token(job.id))

    assert second.force_start(job.id, second_token) == 403
    assert status_of(job.id) == "failed"


def test_a_login_after_logout_acts_again(server):
    job = make_job("failed")
    browser = Browser(server.url)
    browser.login()
    browser.post("/logout", csrf_token=browser.token(job.id))
    browser.login()
    assert browser.force_start(job.id, browser.token(job.id)) == 302
    assert status_of(job.id) == "queued"


def test_a_visitors_logout_ends_no_operators_session(server):
    """Only a logged-in operator ends the sessions: a visitor (who has a CSRF token too) cannot."""
    job = make_job("failed")
    operator, visitor = Browser(server.url), Browser(server.url)
    operator.login()
    token = operator.token(job.id)
    visitor.post("/logout", csrf_token=token_in(visitor.http.get(f"{server.url}/login", timeout=10).text))
    assert operator.force_start(job.id, token) == 302


def test_a_signed_cookie_without_the_server_side_fields_does_not_act(app, server):
    """A cookie issued before this release said only operator=true: it is no login now."""
    job = make_job("failed")
    browser = Browser(server.url)
    browser.login()
    token = browser.token(job.id)
    serializer = app.session_interface.get_signing_serializer(app)  # the server's key (test-secret)
    session = serializer.loads(browser.cookie)
    browser.cookie = serializer.dumps({"operator": True, "csrf_token": session["csrf_token"]})
    assert browser.force_start(job.id, token) == 403
    assert status_of(job.id) == "failed"


class TestExpiry:
    LIFETIME_S = 2.0

    @pytest.fixture
    def server_settings(self) -> dict[str, str]:
        return {"JOBWARDEN_ADMIN_PASSWORD": PASSWORD, "JOBWARDEN_SESSION_LIFETIME_S": str(self.LIFETIME_S)}

    def test_a_replayed_cookie_older_than_the_lifetime_does_not_act(self, server):
        job, other = make_job("failed"), make_job("failed")
        browser = Browser(server.url)
        browser.login()
        token, cookie = browser.token(job.id), browser.cookie
        assert browser.force_start(other.id, token) == 302  # alive at first
        time.sleep(self.LIFETIME_S + 1.5)
        browser.cookie = cookie  # whatever the browser would have dropped
        assert browser.force_start(job.id, token) in (400, 403)  # no session (CSRF) or no login
        assert status_of(job.id) == "failed"

    def test_a_session_in_constant_use_still_ends_at_its_lifetime(self, server):
        """Each answer renews the cookie; the login's start, kept server-side-checked in it, does not move."""
        job = make_job("failed")
        browser = Browser(server.url)
        browser.login()
        token = browser.token(job.id)
        ends = time.monotonic() + self.LIFETIME_S + 0.5
        while time.monotonic() < ends:
            browser.page(job.id)  # a fresh cookie each time
            time.sleep(0.3)
        assert browser.force_start(job.id, token) == 403
        assert status_of(job.id) == "failed"
        assert ">Force start</button>" not in browser.page(job.id)

    def test_the_cookie_itself_expires_with_the_lifetime(self, server):
        cookie = Browser(server.url).login().headers["Set-Cookie"]
        expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))
        assert expires - datetime.now(UTC) < timedelta(minutes=5)  # Flask's default would be 31 days


@pytest.mark.parametrize("raw", ["0", "-5", "soon"])
def test_the_session_lifetime_must_be_a_positive_number_of_seconds(raw):
    with pytest.raises(settings.ConfigError, match="JOBWARDEN_SESSION_LIFETIME_S"):
        settings.from_environment({"JOBWARDEN_SESSION_LIFETIME_S": raw})


def test_a_new_admin_password_ends_the_sessions_of_the_old_one(server):
    """A restart with the same password keeps the login; with a new one it ends it."""
    job, control = make_job("failed"), make_job("failed")
    browser = Browser(server.url)
    browser.login()
    token = browser.token(job.id)

    server.restart()
    assert browser.force_start(control.id, token) == 302
    assert status_of(control.id) == "queued"

    server.env["JOBWARDEN_ADMIN_PASSWORD"] = "a new password entirely"
    server.restart()
    assert browser.force_start(job.id, token) == 403
    assert status_of(job.id) == "failed"
    assert ">Force start</button>" not in browser.page(job.id)
    assert browser.login().status_code == 401  # the old password opens nothing either
