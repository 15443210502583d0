"""Fuzzing the dashboard's query strings and forms (and the API list) with
hypothesis, on each database: whatever arrives, the answer is never a 5xx, a
read never changes the store, and a refused post changes nothing.

benchmarks/fuzz.py fuzzes the API from its OpenAPI document (schemathesis);
this covers what no schema describes: the HTML pages and their forms.
Run time stays modest for CI: QUERY_EXAMPLES and FORM_EXAMPLES (see docs/reliability.md).
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.factories import make_job
from tests.support.snapshot import store_snapshot

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow

QUERY_EXAMPLES, FORM_EXAMPLES = 250, 150


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Names the pages read, names url_for reserves, and anything else.
NAMES = st.sampled_from(
    [
        "status",
        "type",
        "worker",
        "q",
        "sort",
        "order",
        "cursor",
        "ids",
        "limit",
        "endpoint",
        "_anchor",
        "_method",
        "_scheme",
        "_external",
        "action",
        "reason",
        "all_matching",
    ]
) | st.text(min_size=1, max_size=8)
INTERESTING = st.sampled_from(
    [
        "",
        "queued",
        "failed",
        "running",
        "id",
        "priority",
        "created_at",
        "type",
        "asc",
        "desc",
        "1",
        "0",
        "-1",
        "²",
        "①",
        "٣",
        "9223372036854775808",
        "1e999",
        "NaN",
        "\x00",
        "a\x00b",
        "%",
        "_",
        "'; DROP TABLE jobs; --",
        "<script>x</script>",
        "W251bGwsOTIyMzM3MjAzNjg1NDc3NTgwOF0",
        "WyJhYmMiLDFd",
        "WzEyMywxXQ",
        "W3RydWUsMV0",
        "W1sxLDJdLDFd",
        "WyJcdWQ4MDAiLDFd",
        "a" * 300,
    ]
)
VALUES = INTERESTING | st.text(max_size=40) | st.integers(-(2**70), 2**70).map(str)
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=12)
RAW_BYTES = st.binary(max_size=30).map(lambda raw: quote(raw, safe=""))
GET_PATHS = ["/jobs", "/jobs/counts", "/jobs/{id}", "/health", "/stats", "/api/jobs"]


def query_string(pairs: list[tuple[str, str]], raw: str) -> str:
    encoded = "&".join(
        f"{quote(name.encode('utf-8', 'surrogatepass'), safe='')}="
        f"{quote(value.encode('utf-8', 'surrogatepass'), safe='')}"
        for name, value in pairs
    )
    return f"{encoded}&q={raw}" if raw else encoded


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WTF_CSRF_ENABLED": False}


@pytest.fixture
def seeded(app):
    """Jobs in every status, so actions meet each of them."""
    return [make_job(status).id for status in ("pending", "queued", "running", "failed", "cancelled", "completed")]


def test_fuzzed_query_strings_never_reach_a_5xx_or_change_the_store(client, seeded):
    before = store_snapshot()
    answers: Counter[int] = Counter()

    @fuzz(QUERY_EXAMPLES)
    @given(path=st.sampled_from(GET_PATHS), pairs=PAIRS, raw=RAW_BYTES | st.just(""), hx=st.booleans())
    def check(path, pairs, raw, hx):
        url = path.replace("{id}", str(seeded[len(pairs) % len(seeded)])) + "?" + query_string(pairs, raw)
        response = client.get(url, headers={"HX-Request": "true"} if hx else {})
        answers[response.status_code] += 1
        assert response.status_code < 500, (url, response.status_code, response.get_data(as_text=True)[:300])

    check()
    assert store_snapshot() == before
    print(f"query strings: {sum(answers.values())} requests, answers {dict(sorted(answers.items()))}")
    assert answers[200] and answers[400], answers  # both the pages and the refusals were reached


def test_fuzzed_recovery_and_bulk_forms_never_reach_a_5xx_and_a_refusal_changes_nothing(client, seeded):
    forms = st.lists(st.tuples(NAMES, VALUES), max_size=10)
    ids = st.lists(st.sampled_from(seeded).map(str) | VALUES, max_size=5)
    answers: Counter[int] = Counter()

    @fuzz(FORM_EXAMPLES)
    @given(
        bulk=st.booleans(),
        action=st.sampled_from(["cancel", "mark-failed", "force-start", "x"]),
        job=st.sampled_from(seeded),
        fields=forms,
        chosen=ids,
        hx=st.booleans(),
    )
    def check(bulk, action, job, fields, chosen, hx):
        data = [("action", action), *(("ids", value) for value in chosen), *fields] if bulk else fields
        url = "/jobs/bulk" if bulk else f"/jobs/{job}/{action}"
        before = store_snapshot()
        response = client.post(url, data=MultiDict(data), headers={"HX-Request": "true"} if hx else {})
        answers[response.status_code] += 1
        assert response.status_code < 500, (url, data, response.status_code, response.get_data(as_text=True)[:300])
        if response.status_code >= 400:
            assert store_snapshot() == before, (url, data)

    check()
    print(f"forms: {sum(answers.values())} posts, answers {dict(sorted(answers.items()))}")
    assert (answers[302] or answers[200]) and answers[400], answers
