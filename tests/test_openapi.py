"""The OpenAPI document: every API route is documented, every documented path
is routed, and schemathesis finds no 5xx and no answer outside the document."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from webapp.config import MAX_CLAIM_WAIT_S

from tests.conftest import INTERNAL_KEY
from tests.factories import make_job

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

API_PREFIXES = ("/api/", "/healthz", "/metrics")


def routed_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIXES):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operations |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return operations


def test_every_api_route_is_documented_and_every_documented_operation_is_routed(app, client):
    document = client.get("/api/openapi.json").json
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == routed_operations(app)
    assert document["openapi"].startswith("3.")


def test_every_contract_route_is_in_the_document(client):
    paths = client.get("/api/openapi.json").json["paths"]
    for path in [
        "/api/jobs",
        "/api/jobs/bulk",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/events",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/force-start",
        "/api/jobs/{job_id}/mark-failed",
        "/api/jobs/actions",
        "/api/health",
        "/api/admin/cleanup",
        "/api/openapi.json",
        "/healthz",
        "/metrics",
        "/api/internal/jobs/claim",
        "/api/internal/jobs/{job_id}/start",
        "/api/internal/jobs/{job_id}/heartbeat",
        "/api/internal/jobs/{job_id}/steps",
        "/api/internal/jobs/{job_id}/complete",
        "/api/internal/jobs/{job_id}/fail",
        "/api/internal/workers/heartbeat",
        "/api/schedules",
        "/api/schedules/{name}",
        "/api/schedules/{name}/pause",
        "/api/schedules/{name}/resume",
        "/api/schedules/{name}/trigger",
        "/api/internal/schedules/sync",
    ]:
        assert path in paths, path


def test_request_bodies_come_from_the_validating_models(client):
    document = client.get("/api/openapi.json").json
    create = document["components"]["schemas"]["CreateJob"]
    assert create["required"] == ["type"]
    assert create["additionalProperties"] is False
    assert create["properties"]["priority"]["maximum"] == 1_000_000


MAX_EXAMPLES = 15  # per operation and database; benchmarks/fuzz.py runs many more
# A long poll's wait is time, not input: each generated claim or presence held its request for
# its wait_s (up to MAX_CLAIM_WAIT_S; a presence sent without one, half that), 250 of the 260 s
# this test took per database. A valid wait is shortened to this; an invalid one is sent as made.
LONG_POLL_S = 0.01
PRESENCE = "/api/internal/workers/presence"


def test_the_api_answers_generated_requests_within_its_document(app):
    """Every operation, with a job in each status in the store: no 5xx, no status code,
    content type or body outside the document. (schemathesis' own pytest plugin does
    not run under pytest 9, so each operation's strategy is driven with hypothesis here.)"""
    for status in ("pending", "queued", "claimed", "running", "completed", "failed", "cancelled"):
        make_job(status)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        check_operation(operation)


def with_short_waits(case):
    """The generated case, its valid long-poll wait (or a presence's default one) made LONG_POLL_S."""
    body = case.body
    if not isinstance(body, dict):
        return case
    wait = body.get("wait_s")
    presence_default = "wait_s" not in body and case.operation.path == PRESENCE
    long_wait = isinstance(wait, int | float) and not isinstance(wait, bool) and LONG_POLL_S < wait <= MAX_CLAIM_WAIT_S
    if presence_default or long_wait:
        body["wait_s"] = LONG_POLL_S
    return case


def check_operation(operation) -> None:
    @given(case=operation.as_strategy().map(with_short_waits))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers_within_the_document(case):
        case.call_and_validate(
            # The WSGI transport hands back the body as sent: ask for it uncompressed.
            headers={"Authorization": f"Bearer {INTERNAL_KEY}", "Accept-Encoding": "identity"},
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        )

    answers_within_the_document()
