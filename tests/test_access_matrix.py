"""The route × role matrix, generated from the app's route table (`app.url_map`): every
endpoint must declare what it needs in webapp.server.access.ROUTES (a new route that
does not fails here), and every method of every route is called as nobody, a viewer, an
operator and an admin (each with an API token of that role) and as each role through a
dashboard session, on a real database: whoever lacks the role is refused (401 asks an
API caller to sign in, 403 tells a signed-in person, a page sends nobody to /login) and
whoever has it is not.
"""

from __future__ import annotations

import re

import pytest
from werkzeug.routing import Rule

from webapp.domain.roles import Role
from webapp.jobs import queues, tokens, users
from webapp.server import access
from webapp.webhooks import endpoints

from tests.factories import make_job

ROLES = (None, Role.VIEWER, Role.OPERATOR, Role.ADMIN)
PASSWORD = "a long admin password"


@pytest.fixture
def app_config(app_config):
    return {
        **app_config,
        "JOBWARDEN_ADMIN_PASSWORD": PASSWORD,
        "WTF_CSRF_ENABLED": False,  # CSRF has its own tests (tests/test_identity.py); here: roles
        "JOBWARDEN_GUESS_RATE_LIMIT": "10000 per minute",
        "JOBWARDEN_GUESS_RATE_LIMIT_TOTAL": "10000 per minute",
        "JOBWARDEN_WEBHOOK_ALLOW_PRIVATE": True,
    }


def test_every_route_declares_what_it_needs(app):
    endpoints_in_app = {rule.endpoint for rule in app.url_map.iter_rules()}
    undeclared = sorted(endpoints_in_app - set(access.ROUTES))
    assert not undeclared, f"declare these in webapp/server/access.py ROUTES: {undeclared}"
    stale = sorted(set(access.ROUTES) - endpoints_in_app)
    assert not stale, f"ROUTES names endpoints that do not exist: {stale}"


def test_an_undeclared_route_is_refused_to_everybody(app, client):
    """Fail closed: a route somebody forgot to declare answers 403 even to an admin."""
    app.add_url_rule("/api/forgotten", "forgotten", lambda: "secret")
    answer = client.get("/api/forgotten", headers=_basic(PASSWORD))
    assert (answer.status_code, answer.json["error"]) == (403, "undeclared")


@pytest.fixture
def people(app) -> dict[Role, str]:
    """A user and an API token of each role: role → the token's secret."""
    secrets = {}
    for role in Role:
        person = users.add_user(role.label, role, "a password of twelve+")
        secrets[role] = tokens.create(person, "matrix", role).secret
    return secrets


@pytest.fixture
def samples(app, people) -> dict[str, str]:
    """A value for each kind of path argument, naming things that exist."""
    job = make_job("failed")
    spare = tokens.create(
        users.live_person(users.add_user("spare", Role.OPERATOR, "a password of twelve+").id), "spare", Role.VIEWER
    )
    queues.pause("default", actor="test")
    webhook = endpoints.create("http://127.0.0.1:9/hook", ["job.failed"], "standard").endpoint
    return {
        "job_id": str(job.id),
        "name": "default",
        "webhook_id": str(webhook.id),
        "delivery_id": "1",
        "token_id": str(spare.token.id),
    }


def _url(rule: Rule, samples: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        converter, name = match.group(1) or "", match.group(2)
        if name == "action":
            choices = re.search(r"any\(([^)]*)\)", converter)
            return choices.group(1).split(",")[0].strip() if choices else "cancel"
        if name == "filename":
            return "dashboard.css"
        return samples.get(name, "1")

    return re.sub(r"<(?:([^:<>]+):)?([^<>]+)>", fill, rule.rule)


def _basic(password: str, name: str = "") -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def _calls(app, samples):
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            level = access.level_for(rule.endpoint, method)
            if isinstance(level, Role):
                yield rule, method, level, _url(rule, samples)


def _call(client, method: str, url: str, headers: dict[str, str]):
    body = {"json": {}} if url.startswith("/api/") and method != "GET" else {}
    return client.open(url, method=method, headers=headers, **body)


def test_the_api_and_the_pages_answer_each_role_as_declared(app, client, people, samples):
    checked = 0
    for _rule, method, needed, url in _calls(app, samples):
        for role in ROLES:
            headers = {"Authorization": f"Bearer {people[role]}"} if role else {}
            answer = _call(client, method, url, headers)
            where = f"{method} {url} as {role.label if role else 'nobody'} (needs {needed.label})"
            api = url.startswith("/api/")
            if role is not None and role >= needed:
                assert answer.status_code not in (401, 403), where
                assert "/login" not in answer.headers.get("Location", ""), where
            elif role is None and needed > Role.VIEWER:
                if api:
                    assert answer.status_code == 401 and "Basic" in answer.headers["WWW-Authenticate"], where
                elif method == "GET":
                    assert answer.status_code == 302 and "/login" in answer.headers["Location"], where
                else:
                    assert answer.status_code == 403, where
            elif role is not None:
                assert answer.status_code == 403, where
                assert "role" in answer.get_data(as_text=True), where
            checked += 1
    assert checked > 200  # every role-guarded route, four callers each


def test_a_dashboard_session_of_each_role_is_held_to_the_same_table(app, people, samples):
    """The pages through a signed-in browser (a session cookie, no header)."""
    for role in Role:
        browser = app.test_client()
        assert browser.post("/login", data={"name": role.label, "password": "a password of twelve+"}).status_code == 302
        for _rule, method, needed, url in _calls(app, samples):
            if url.startswith("/api/"):
                continue
            answer = browser.open(url, method=method)
            where = f"{method} {url} as {role.label}'s session (needs {needed.label})"
            if role >= needed:
                assert answer.status_code not in (401, 403), where
            else:
                assert answer.status_code == 403, where


def test_the_api_never_takes_the_session_cookie(app, people):
    """A cookie alone never acts on the API: its routes carry no CSRF token."""
    browser = app.test_client()
    browser.post("/login", data={"name": "admin", "password": "a password of twelve+"})
    job = make_job("queued")
    assert browser.post(f"/api/jobs/{job.id}/cancel", json={}).status_code == 401


def test_with_anonymous_role_none_reading_needs_a_sign_in(app_config, app):
    from webapp import config as settings
    from webapp import create_app

    anonymous_role = settings.from_environment({"JOBWARDEN_ANONYMOUS_ROLE": "none"})["JOBWARDEN_ANONYMOUS_ROLE"]
    app = create_app({**app_config, "JOBWARDEN_ANONYMOUS_ROLE": anonymous_role})
    with app.app_context():
        client = app.test_client()
        assert client.get("/api/jobs").status_code == 401
        assert "/login" in client.get("/jobs").headers["Location"]
        assert client.get("/healthz").status_code in (200, 503)
        assert client.get("/api/jobs", headers=_basic(PASSWORD)).status_code == 200
