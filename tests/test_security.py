"""Security by default: headers, cookies, CSRF on every form, a rate-limited
login, a read-only mode that refuses writes, and secrets that never reach a log."""

from __future__ import annotations

import base64
import re

import pytest
import requests

from webapp import jobs
from webapp.store.extensions import db

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job

PASSWORD = "correct horse battery staple"
INTERNAL = {"Authorization": f"Bearer {INTERNAL_KEY}"}


def test_pages_carry_a_content_security_policy_allowing_only_the_apps_own_scripts_and_styles(client):
    headers = client.get("/jobs").headers
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";") if part.strip())
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_the_api_answers_carry_the_same_headers(client):
    headers = client.get("/api/jobs").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


HEADERS_ASKED = [
    ("GET", "/api/jobs", {}),
    ("GET", "/jobs", {}),
    ("GET", "/login", {}),
    ("GET", "/nowhere", {}),
    ("POST", "/api/jobs", {"json": {"type": "x"}}),
    ("POST", "/api/internal/jobs/claim", {"json": {"worker_id": "w", "wait_s": 0}, "headers": INTERNAL}),
    ("GET", "/api/jobs", {"base_url": "https://localhost"}),
    ("GET", "/jobs", {"headers": {"X-Forwarded-Proto": "https"}}),
    ("POST", "/login", {"data": {"password": "wrong"}, "base_url": "https://localhost"}),
]


def test_each_answer_carries_byte_for_byte_the_headers_flask_talisman_itself_sets(app, app_config, monkeypatch):
    """webapp.server.security_headers makes them once: every answer's headers, in their order,
    are those of the same app with flask-talisman building them per response (Set-Cookie's
    attributes too; its value is a fresh signature)."""
    import flask_talisman

    from webapp import create_app
    from webapp.server import app as app_module

    ours = create_app(app_config).test_client()
    monkeypatch.setattr(app_module, "talisman", flask_talisman.Talisman())
    theirs = create_app(app_config).test_client()
    for method, path, asked in HEADERS_ASKED:
        mine, stock = ours.open(path, method=method, **asked), theirs.open(path, method=method, **asked)
        assert mine.status_code == stock.status_code, path
        assert _headers(mine) == _headers(stock), (method, path, asked)
        assert ("Strict-Transport-Security" in mine.headers) == ("https" in str(asked)), path


def _headers(response) -> list[tuple[str, str]]:
    return [
        (name, value.split(";", 1)[1] if name == "Set-Cookie" else value) for name, value in response.headers.items()
    ]


def test_a_view_with_talisman_options_of_its_own_or_a_nonce_gets_them(app_config):
    from flask import Flask

    from webapp import create_app
    from webapp.server.extensions import talisman
    from webapp.server.security_headers import Talisman

    served = create_app(app_config)
    served.add_url_rule("/framed", "framed", talisman(frame_options="SAMEORIGIN")(lambda: "framed"))
    assert served.test_client().get("/framed").headers["X-Frame-Options"] == "SAMEORIGIN"
    assert served.test_client().get("/login").headers["X-Frame-Options"] == "DENY"

    bare = Flask(__name__)
    Talisman().init_app(
        bare,
        force_https=False,
        content_security_policy={"script-src": "'self'"},
        content_security_policy_nonce_in=["script-src"],
    )
    bare.add_url_rule("/", "index", lambda: "index")
    policies = {bare.test_client().get("/").headers["Content-Security-Policy"] for _ in range(2)}
    assert len(policies) == 2 and all("'nonce-" in policy for policy in policies)


def test_no_page_has_inline_script_or_style(client):
    job = make_job("failed")
    for path in ("/jobs", f"/jobs/{job.id}", "/health", "/stats"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert "<style" not in html and " style=" not in html, path


@pytest.fixture
def app_config(app_config):
    return {**app_config, "JOBWARDEN_ADMIN_PASSWORD": PASSWORD, "JOBWARDEN_SECURE_COOKIES": True}


def login(client, password: str):
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    return client.post("/login", data={"password": password, "csrf_token": token})


def test_the_session_cookie_is_secure_http_only_and_same_site(client):
    response = login(client, PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_request_without_cookies_gets_an_empty_session_without_the_signing_work(app, client, monkeypatch):
    """webapp.server.cookie_sessions: a worker's or a script's request (no Cookie header) builds
    no signing serializer; a browser's login cookie is opened by Flask's own code and acts."""
    interface, built = app.session_interface, []
    original = interface.get_signing_serializer
    monkeypatch.setattr(interface, "get_signing_serializer", lambda app: built.append(app) or original(app))
    assert client.get("/api/jobs", headers=basic_admin()).status_code == 200
    assert client.get("/audit").status_code == 302  # to the sign-in: no session
    assert built == []
    assert login(client, PASSWORD).status_code == 302
    built.clear()
    assert client.get("/audit").status_code == 200  # the login cookie's session acts
    assert built


def test_login_is_rate_limited_after_five_attempts_a_minute(client):
    assert [login(client, "wrong").status_code for _ in range(5)] == [401] * 5
    assert login(client, PASSWORD).status_code == 429


def test_only_a_rate_limited_route_runs_the_rate_limiter(app, app_config, monkeypatch):
    """flask-limiter's check before every request is dropped (there is no default or blueprint
    limit for it to find, and it was 0.35 ms of every create and claim); the login's own
    decorator still checks its limit (the test above)."""
    from flask_limiter import Limiter

    from webapp import create_app

    checks: list[str | None] = []
    check = Limiter._check_request_limit

    def counted(self, callable_name=None, in_middleware=True):
        checks.append(callable_name)
        return check(self, callable_name, in_middleware)

    monkeypatch.setattr(Limiter, "_check_request_limit", counted)
    client = create_app(app_config).test_client()  # on `app`'s database, its limiter counted
    assert client.post("/api/jobs", json={"type": "x"}, headers=basic_admin()).status_code == 201
    assert client.get("/api/jobs", headers=basic_admin()).status_code == 200
    assert checks == []
    login(client, "wrong")  # its GET and its POST: the decorator checks both, limits the POST
    assert checks and all(name.endswith(".login") for name in checks)


def basic_admin() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


def test_every_dashboard_form_refuses_a_post_without_the_csrf_token(client):
    job = make_job("queued")
    login(client, PASSWORD)
    for path, data in [
        (f"/jobs/{job.id}/cancel", {}),
        (f"/jobs/{job.id}/mark-failed", {"reason": "x"}),
        ("/jobs/bulk", {"action": "cancel", "ids": [job.id]}),
        ("/logout", {}),
        ("/login", {"password": PASSWORD}),
    ]:
        assert client.post(path, data=data).status_code == 400, path
    db.session.expire_all()
    assert jobs.get_job(job.id).status == "queued"


def test_without_login_the_job_page_shows_no_actions_and_refuses_them(app, client):
    job = make_job("queued")
    html = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert ">Cancel</button>" not in html and "Log in" in html
    app.config["WTF_CSRF_ENABLED"] = False
    assert client.post(f"/jobs/{job.id}/cancel").status_code == 403


def test_a_read_only_deployment_hides_and_refuses_every_dashboard_action(app, client):
    job = make_job("failed")
    login(client, PASSWORD)
    app.config["JOBWARDEN_READ_ONLY"] = True
    html = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert ">Force start</button>" not in html and "Read-only" in html
    app.config["WTF_CSRF_ENABLED"] = False
    assert client.post(f"/jobs/{job.id}/force-start").status_code == 403
    basic = base64.b64encode(f"x:{PASSWORD}".encode()).decode()
    assert (
        client.post(f"/api/jobs/{job.id}/force-start", json={}, headers={"Authorization": f"Basic {basic}"}).status_code
        == 403
    )
    db.session.expire_all()
    assert jobs.get_job(job.id).status == "failed"


def test_neither_the_internal_key_nor_the_password_reaches_the_server_log(database_url, tmp_path):
    from tests.support.server import running_server

    log_path = tmp_path / "server.log"
    with running_server(database_url, log_path, JOBWARDEN_ADMIN_PASSWORD=PASSWORD) as server:
        session = requests.Session()
        session.post(
            f"{server.url}/api/internal/jobs/claim",
            json={"worker_id": "w"},
            headers={"Authorization": f"Bearer {INTERNAL_KEY}"},
            timeout=10,
        )
        session.post(
            f"{server.url}/api/internal/jobs/claim",
            json={"worker_id": "w"},
            headers={"Authorization": f"Bearer {INTERNAL_KEY}-wrong"},
            timeout=10,
        )
        for password in (PASSWORD, PASSWORD + "-wrong"):
            session.post(f"{server.url}/api/jobs", json={"type": "x"}, auth=("op", password), timeout=10)
            page = session.get(f"{server.url}/login", timeout=10).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            session.post(f"{server.url}/login", data={"password": password, "csrf_token": token}, timeout=10)
        answer = session.post(
            f"{server.url}/api/internal/jobs/claim",
            json={},
            headers={"Authorization": f"Bearer {INTERNAL_KEY}-wrong"},
            timeout=10,
        )
        assert INTERNAL_KEY not in answer.text
    log = log_path.read_text()
    assert "Booting worker" in log  # the log is the server's
    assert INTERNAL_KEY not in log and PASSWORD not in log
