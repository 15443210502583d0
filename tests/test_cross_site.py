"""No HTML form on another website can act through the operator's browser.

The JSON API's writes take only `Content-Type: application/json` (415 otherwise, an
empty body too) and refuse requests from another site (403: an `Origin` that is not
this server, `Sec-Fetch-Site: cross-site` or `same-site`), with or without a password.
Dashboard forms carry a CSRF token and get the same site check. Scripts, the CLI and
workers, which send JSON and no `Origin`, keep working.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys

import pytest
import requests
from sqlalchemy import func, select

from webapp import jobs
from webapp.client import JobwardenClient
from webapp.store.extensions import db
from webapp.store.models import Job, MonitorPass

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job
from tests.support.server import PROJECT_ROOT

EVIL = "http://evil.example"
# What an HTML form can send: (Content-Type, body).
FORM_BODIES = {
    "urlencoded": ("application/x-www-form-urlencoded", ""),
    "urlencoded-reason": ("application/x-www-form-urlencoded", "reason=pwned"),
    "text-plain": ("text/plain", ""),
    "text-plain-json": ("text/plain", '{"reason": "pwned"}'),
    "multipart": (
        "multipart/form-data; boundary=x",
        '--x\r\nContent-Disposition: form-data; name="reason"\r\n\r\npwned\r\n--x--\r\n',
    ),
}
RECOVERY = ("mark-failed", "force-start", "cancel")


def status_of(job_id: int) -> str:
    db.session.expire_all()
    return jobs.get_job(job_id).status


def store_counts() -> tuple[int, int]:
    """Jobs and monitor passes: a refused create or cleanup adds neither."""
    db.session.rollback()
    return (
        db.session.scalar(select(func.count()).select_from(Job)),
        db.session.scalar(select(func.count()).select_from(MonitorPass)),
    )


def write_paths(job_id: int) -> list[str]:
    return [
        *(f"/api/jobs/{job_id}/{action}" for action in RECOVERY),
        "/api/jobs",
        "/api/jobs/bulk",
        "/api/jobs/actions",
        "/api/admin/cleanup",
    ]


# --- test client: the headers, one by one ----------------------------------------------------------


@pytest.mark.parametrize("form", FORM_BODIES)
def test_a_cross_site_form_post_is_refused_on_every_write_and_changes_nothing(client, form):
    job = make_job("queued")
    content_type, body = FORM_BODIES[form]
    for path in write_paths(job.id):
        response = client.post(path, data=body, headers={"Content-Type": content_type, "Origin": EVIL})
        assert response.status_code == 403, path
        assert response.json["error"] == "cross_site" and "Origin: http://evil.example" in response.json["message"]
    assert status_of(job.id) == "queued" and store_counts() == (1, 0)


@pytest.mark.parametrize("form", FORM_BODIES)
def test_a_form_post_without_origin_is_415_whatever_its_body(client, form):
    """Old browsers and some redirects send no Origin: the content type alone refuses the form."""
    job = make_job("queued")
    content_type, body = FORM_BODIES[form]
    for path in write_paths(job.id):
        response = client.post(path, data=body, headers={"Content-Type": content_type})
        assert (response.status_code, response.json["error"]) == (415, "unsupported_media_type"), path
        assert "application/json" in response.json["message"]
    assert status_of(job.id) == "queued" and store_counts() == (1, 0)


def test_an_empty_post_without_content_type_is_415(client):
    job = make_job("queued")
    response = client.post(f"/api/jobs/{job.id}/mark-failed")
    assert (response.status_code, response.json["error"]) == (415, "unsupported_media_type")
    assert status_of(job.id) == "queued"


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_sec_fetch_site_from_another_site_is_refused_even_with_json(client, site):
    job = make_job("queued")
    response = client.post(f"/api/jobs/{job.id}/mark-failed", json={}, headers={"Sec-Fetch-Site": site})
    assert (response.status_code, response.json["error"]) == (403, "cross_site")
    assert site in response.json["message"]
    assert status_of(job.id) == "queued"


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost.evil.example", "file://", "localhost"])
def test_json_from_a_foreign_or_opaque_origin_is_refused(client, origin):
    job = make_job("queued")
    response = client.post(f"/api/jobs/{job.id}/cancel", json={}, headers={"Origin": origin})
    assert (response.status_code, response.json["error"]) == (403, "cross_site")
    assert status_of(job.id) == "queued"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "http://localhost"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "none"},
    ],
)
def test_json_from_this_site_or_a_script_is_accepted(client, headers):
    job = make_job("queued")
    response = client.post(f"/api/jobs/{job.id}/mark-failed", json={"reason": "by hand"}, headers=headers)
    assert response.status_code == 200, response.json
    assert status_of(job.id) == "failed"


def test_json_with_a_charset_parameter_is_json(client):
    job = make_job("queued")
    response = client.post(
        f"/api/jobs/{job.id}/cancel", data="", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 200
    assert status_of(job.id) == "cancelled"


def test_reads_are_not_affected(client):
    assert client.get("/api/jobs", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_the_internal_api_keeps_working_for_workers(client):
    make_job("queued")
    response = client.post(
        "/api/internal/jobs/claim", json={"worker_id": "w1"}, headers={"Authorization": f"Bearer {INTERNAL_KEY}"}
    )
    assert response.status_code == 200 and len(response.json["jobs"]) == 1


def test_the_internal_api_refuses_a_cross_site_write_too(client):
    make_job("queued")
    response = client.post(
        "/api/internal/jobs/claim",
        json={"worker_id": "w1"},
        headers={"Authorization": f"Bearer {INTERNAL_KEY}", "Origin": EVIL},
    )
    assert (response.status_code, response.json["error"]) == (403, "cross_site")
    db.session.rollback()
    assert jobs.list_jobs(jobs.JobFilter(statuses=["queued"]), limit=5)[0]


def csrf_token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize(
    "headers", [{"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}]
)
def test_a_dashboard_form_from_another_site_is_refused_even_with_a_valid_csrf_token(client, headers):
    job = make_job("queued")
    token = csrf_token(client, f"/jobs/{job.id}")
    response = client.post(f"/jobs/{job.id}/mark-failed", data={"csrf_token": token}, headers=headers)
    assert response.status_code == 403
    assert "another site" in response.get_data(as_text=True)
    bulk = client.post(
        "/jobs/bulk", data={"csrf_token": token, "action": "cancel", "ids": [str(job.id)]}, headers=headers
    )
    assert bulk.status_code == 403
    assert status_of(job.id) == "queued"


def test_a_dashboard_form_from_this_site_still_acts(client):
    job = make_job("queued")
    token = csrf_token(client, f"/jobs/{job.id}")
    response = client.post(
        f"/jobs/{job.id}/mark-failed",
        data={"csrf_token": token},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 302
    assert status_of(job.id) == "failed"


class TestWithAPassword:
    PASSWORD = "correct horse battery staple"

    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "JOBWARDEN_ADMIN_PASSWORD": self.PASSWORD}

    def basic(self) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(f"x:{self.PASSWORD}".encode()).decode()}

    def test_cached_basic_credentials_do_not_let_a_cross_site_form_act(self, client):
        """A browser attaches Basic credentials it has seen to a hostile page's form too."""
        job = make_job("queued")
        response = client.post(
            f"/api/jobs/{job.id}/mark-failed",
            data="",
            headers={**self.basic(), "Content-Type": "text/plain", "Origin": EVIL},
        )
        assert (response.status_code, response.json["error"]) == (403, "cross_site")
        response = client.post(
            f"/api/jobs/{job.id}/mark-failed", data="", headers={**self.basic(), "Content-Type": "text/plain"}
        )
        assert response.status_code == 415
        assert status_of(job.id) == "queued"

    def test_a_script_with_the_password_acts(self, client):
        job = make_job("queued")
        assert client.post(f"/api/jobs/{job.id}/mark-failed", json={}, headers=self.basic()).status_code == 200
        assert status_of(job.id) == "failed"


# --- a real gunicorn server: what a browser's form would send, then the real clients ----------------


def test_against_a_real_server_cross_site_forms_change_nothing_and_scripts_and_the_cli_still_work(server):
    job = make_job("queued")
    others = [make_job("queued") for _ in range(2)]
    for name, (content_type, body) in FORM_BODIES.items():
        for path in write_paths(job.id):
            for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}, {}):
                response = requests.post(
                    server.url + path, data=body, timeout=10, headers={"Content-Type": content_type, **headers}
                )
                expected = 403 if headers else 415
                assert response.status_code == expected, (name, path, headers, response.text)
                assert response.json()["error"] in ("cross_site", "unsupported_media_type")
    assert status_of(job.id) == "queued" and store_counts() == (3, 0)

    client = JobwardenClient(server.url)
    assert client.mark_failed(job.id, "by script")["status"] == "failed"
    assert client.bulk_action("cancel", ids=[others[0].id]) == {"changed": 1, "skipped": []}
    assert client.cleanup()["skipped"] is False
    assert store_counts() == (3, 1)

    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "JOBWARDEN_SERVER": server.url}
    env.pop("JOBWARDEN_ADMIN_PASSWORD", None)
    cli = subprocess.run(
        [sys.executable, "-m", "webapp", "jobs", "cancel", str(others[1].id)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"job {others[1].id} is now cancelled" in cli.stdout

    if shutil.which("curl"):
        again = make_job("queued")
        curl = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                f"{server.url}/api/jobs/{again.id}/cancel",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert curl.stdout == "200", curl.stderr
        assert status_of(again.id) == "cancelled"
    assert status_of(others[0].id) == "cancelled" and status_of(others[1].id) == "cancelled"
