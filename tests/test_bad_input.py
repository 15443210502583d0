"""Bad input everywhere: an unknown job in every route, SQL and HTML in every
text field and filter, non-UTF-8 bytes. Clear errors, no 500, nothing stored
that was not asked for, and text kept exactly as sent."""

from __future__ import annotations

import re

import pytest

from webapp import jobs

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}
INTERNAL_BODIES = {
    "start": {"lease_token": "t"},
    "heartbeat": {"lease_token": "t"},
    "complete": {"lease_token": "t"},
    "steps": {"lease_token": "t", "name": "s", "event": "started"},
    "fail": {"lease_token": "t", "error": "e"},
    "stopped": {"lease_token": "t"},
    "log": {"lease_token": "t", "offset": 0, "text": "2026-12-06T00:00:00.000Z out hello\n"},
}
HOSTILE = [
    "'; DROP TABLE jobs; --",
    '" OR 1=1 --',
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "%_\\",
    "ünïcødé ✓ 🚀",
    "a" * 200,
]


def job_routes(app) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if "<job_id:job_id>" in rule.rule:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.append((method, rule.rule.replace("<job_id:job_id>", "424242").replace("<action>", "cancel")))
    return routes


def test_an_unknown_job_is_a_404_in_every_route_that_takes_one(app, client):
    app.config["WTF_CSRF_ENABLED"] = False
    routes = job_routes(app)
    assert len(routes) >= 12
    for method, path in routes:
        body = INTERNAL_BODIES.get(path.rsplit("/", 1)[-1], {}) if "/internal/" in path else {}
        response = (
            client.open(path, method=method, json=body, headers=KEY)
            if path.startswith("/api/")
            else client.open(path, method=method)
        )
        assert response.status_code == 404, (method, path, response.status_code)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_in_a_job_is_stored_and_answered_exactly_as_sent(client, text):
    created = client.post("/api/jobs", json={"type": text, "payload": {"note": text, text: [text]}})
    assert created.status_code == 201
    answer = client.get(f"/api/jobs/{created.json['id']}").json
    assert (answer["type"], answer["payload"]) == (text, {"note": text, text: [text]})


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_in_every_filter_is_a_plain_search(client, text):
    make_job("queued", type="plain")
    for query in ({"q": text}, {"type": text}, {"worker": text}):
        response = client.get("/api/jobs", query_string=query)
        assert response.status_code == 200 and response.json["jobs"] == [], query
        page = client.get("/jobs", query_string=query)
        assert page.status_code == 200
        assert "<script>alert(1)</script>" not in page.get_data(as_text=True)
    assert len(jobs.list_jobs(jobs.JobFilter())[0]) == 1


def test_a_like_wildcard_in_the_text_filter_matches_only_itself(client):
    make_job("queued", type="a_b")
    make_job("queued", type="axb")
    assert [j["type"] for j in client.get("/api/jobs", query_string={"q": "a_b"}).json["jobs"]] == ["a_b"]
    assert client.get("/api/jobs", query_string={"q": "%"}).json["jobs"] == []


@pytest.mark.parametrize("raw", [b'{"type": "\xff\xfe"}', b"\xc3\x28", b'{"type": "x"}\x00'])
def test_non_utf8_or_trailing_bytes_in_a_body_are_a_400(client, raw):
    response = client.post("/api/jobs", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert jobs.list_jobs(jobs.JobFilter())[0] == []


def test_non_utf8_bytes_in_a_query_string_are_not_a_500(client):
    for path in ("/api/jobs?q=%ff%fe", "/jobs?q=%ff%fe", "/api/jobs?type=%c3%28", "/jobs?status=%ff"):
        assert client.get(path).status_code in (200, 400), path


def test_html_in_an_error_is_shown_as_text_on_the_job_page_and_in_the_table(client):
    job = make_job("running")
    jobs.fail_job(job.id, job.lease_token, error="<img src=x onerror=alert(1)>", output="<b>bold</b>", retryable=False)
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    table = client.get("/jobs").get_data(as_text=True)
    for html in (page, table):
        assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


@pytest.mark.parametrize("path", ["/jobs/0", "/jobs/-1", "/jobs/abc", "/api/jobs/1e3", "/api/jobs/01"])
def test_a_malformed_job_id_is_a_404(client, path):
    assert client.get(path).status_code == 404


def test_a_huge_bulk_body_is_a_413_and_stores_nothing(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    body = {"jobs": [{"type": "x", "payload": "p" * 1000}] * 100}
    assert client.post("/api/jobs/bulk", json=body).status_code == 413
    assert jobs.list_jobs(jobs.JobFilter())[0] == []


def test_every_400_names_a_field_in_its_message(client):
    for response in (
        client.post("/api/jobs", json={"type": 1}),
        client.get("/api/jobs?limit=x"),
        client.post("/api/internal/jobs/claim", json={"batch_size": "x"}, headers=KEY),
    ):
        assert response.status_code == 400
        assert re.match(r"^[a-z_\[\]0-9.]+: ", response.json["message"]), response.json


def test_a_405_names_the_methods_the_route_allows(client):
    answer = client.delete("/api/jobs")
    assert answer.status_code == 405 and answer.json["error"] == "method_not_allowed"
    assert set(answer.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
