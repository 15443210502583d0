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


def _body_models() -> set[type]:
    """Every model a JSON body is read with, nested ones included (the API's routes register
    their operations on import)."""
    from pydantic import BaseModel

    from webapp.server.api.spec import OPERATIONS

    found: set[type] = set()
    todo = [op.body for op in OPERATIONS if op.body is not None]
    while todo:
        model = todo.pop()
        if model in found:
            continue
        found.add(model)
        for field in model.model_fields.values():
            for inner in _types_in(field.annotation):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    todo.append(inner)
    return found


def _types_in(annotation) -> list:
    from typing import get_args

    return [annotation, *[t for arg in get_args(annotation) for t in _types_in(arg)]]


WRONG_JSON_TYPES = {int: [True, "5", 2.5], float: [True, "1.5"], bool: [1, "true", "yes"]}


def test_no_body_field_reads_a_value_of_another_json_type(app):
    """`true` is no priority, `"5"` no count, `1` no yes/no: each is refused, naming the field."""
    models = _body_models()
    assert len(models) >= 20
    checked = 0
    for model in models:
        for name, field in model.model_fields.items():
            plain = [t for t in _types_in(field.annotation) if t in WRONG_JSON_TYPES]
            if not plain:
                continue
            for wrong in WRONG_JSON_TYPES[plain[0]]:
                try:
                    model.model_validate({name: wrong})
                except ValueError as error:
                    assert any(e["loc"][:1] == (name,) for e in error.errors()), (model, name, wrong)
                else:
                    raise AssertionError(f"{model.__name__}.{name} read {wrong!r}")
                checked += 1
    assert checked >= 60


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "t", "priority": True}, "priority"),
        ({"type": "t", "max_attempts": "3"}, "max_attempts"),
        ({"type": "t", "hold": 1}, "hold"),
        ({"type": "t", "hold": "false"}, "hold"),
        ({"type": "t", "delay_s": True}, "delay_s"),
        ({"type": "t", "run_after": 1_800_000_000}, "run_after"),
    ],
)
def test_a_create_with_a_value_of_another_json_type_is_a_400_and_stores_nothing(client, body, field):
    answer = client.post("/api/jobs", json=body)
    assert answer.status_code == 400 and answer.json["field"] == field, answer.json
    bulk = client.post("/api/jobs/bulk", json={"jobs": [{"type": "t"}, body]})
    assert bulk.status_code == 400 and bulk.json["field"] == f"jobs[1].{field}", bulk.json
    assert jobs.list_jobs(jobs.JobFilter())[0] == []


def test_json_numbers_times_and_statuses_are_still_read_as_sent(client):
    made = client.post("/api/jobs", json={"type": "t", "priority": 5, "delay_s": 1, "hold": False, "max_attempts": 2.0})
    # JSON has one kind of number: 2.0 is the integer 2 (Python's json.dumps writes it so).
    assert made.status_code == 201 and made.json["priority"] == 5 and made.json["max_attempts"] == 2
    assert isinstance(made.json["max_attempts"], int)
    every = client.post("/api/schedules", json={"name": "tick", "type": "t", "every_s": 300.0})
    assert every.status_code == 201 and every.json["every_s"] == 300, every.json
    later = client.post("/api/jobs", json={"type": "t", "run_after": "2030-01-01T00:00:00+01:00"})
    assert later.status_code == 400 and later.json["field"] == "run_after"  # over a year ahead, read as a time
    chosen = client.post("/api/jobs/actions", json={"action": "cancel", "filter": {"status": ["queued"], "type": "t"}})
    assert chosen.status_code == 200 and chosen.json["changed"] == 1
    # A URL's query is text, read as its field's type.
    assert client.get("/api/jobs?limit=5&status=cancelled").json["jobs"][0]["id"] == made.json["id"]
