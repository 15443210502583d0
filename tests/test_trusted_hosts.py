"""DNS rebinding: a page on a name the attacker controls, resolved to 127.0.0.1, sends
`Host` and `Origin` both as its own name; they agree, so the cross-site check alone let
it create jobs on a server without a password. The server answers only to its own names."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import func, select

from webapp import create_app
from webapp.config import from_environment
from webapp.store.extensions import db
from webapp.store.models import Job

from tests.conftest import test_config
from tests.support.server import running_server


def test_a_rebinding_page_s_requests_to_a_real_server_are_refused_and_change_nothing(database_url, app, tmp_path):
    with running_server(database_url, tmp_path / "server.log") as server:
        rebound = f"rebind.evil.example:{server.port}"
        headers = {"Host": rebound, "Origin": f"http://{rebound}"}
        created = requests.post(f"{server.url}/api/jobs", json={"type": "x"}, headers=headers, timeout=10)
        page = requests.get(f"{server.url}/jobs", headers=headers, timeout=10)
        own = requests.post(f"{server.url}/api/jobs", json={"type": "x"}, timeout=10)
    assert created.status_code == 400 and "not trusted" in created.json()["message"]
    assert page.status_code == 400
    assert own.status_code == 201
    assert db.session.execute(select(func.count()).select_from(Job)).scalar() == 1


@pytest.mark.parametrize(
    ("environment", "answers_to", "refuses"),
    [
        ({}, ["localhost", "127.0.0.1:5000"], ["rebind.evil.example", "jobs.example.com"]),
        ({"JOBWARDEN_PUBLIC_URL": "https://jobs.example.com/"}, ["jobs.example.com", "localhost:80"], ["evil.example"]),
        (
            {"JOBWARDEN_TRUSTED_HOSTS": "web, .internal.example"},
            ["web:8000", "a.internal.example", "127.0.0.1"],
            ["webx", "internal.example.evil"],
        ),
        ({"JOBWARDEN_TRUSTED_HOSTS": "*"}, ["rebind.evil.example", "anything:1"], []),
    ],
)
def test_the_trusted_names_are_loopback_the_public_url_and_the_configured_ones(
    app, database_url, environment, answers_to, refuses
):
    configured = create_app(test_config(database_url, TRUSTED_HOSTS=from_environment(environment)["TRUSTED_HOSTS"]))
    client = configured.test_client()
    for host in answers_to:
        assert client.get("/api/jobs", headers={"Host": host}).status_code == 200, host
    for host in refuses:
        assert client.get("/api/jobs", headers={"Host": host}).status_code == 400, host
