"""JSON numbers come back as they were sent, on both databases (issue 24, item 7).

PostgreSQL's jsonb gave 1e16 back as the integer 10000000000000000 and 1e308 as a
309-digit integer; the worker received ints, and sending back what the API returned
was refused (integers must lie within ±2^53). Property: whatever JSON a client may
send comes back from GET, from a worker's claim and as the result a worker reports,
with the same values and the same types (a float stays a float, an int an int). The
one rule beyond that: -0.0 comes back 0.0 on both databases (jsonb's numeric has no
negative zero, so SQLite is made to agree).
"""

from __future__ import annotations

import math
from itertools import count
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import INTERNAL_KEY

KEY = {"Authorization": f"Bearer {INTERNAL_KEY}"}
SAFE = 2**53
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
numbers = st.integers(-SAFE, SAFE) | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=16,
)
EXTREMES = {"a": 1e16, "d": 1e308, "tiny": 5e-324, "max": 1.7976931348623157e308, "big_int": SAFE, "neg": -1e22}


def assert_same(sent: Any, got: Any, where: str = "$") -> None:
    if isinstance(sent, float):
        assert type(got) is float and got == sent, f"{where}: sent {sent!r}, got {got!r}"
    else:
        assert type(got) is type(sent), f"{where}: sent {sent!r} ({type(sent).__name__}), got {got!r}"
        if isinstance(sent, dict):
            assert sent.keys() == got.keys(), where
            for key in sent:
                assert_same(sent[key], got[key], f"{where}.{key}")
        elif isinstance(sent, list):
            assert len(sent) == len(got), where
            for index, (item, back) in enumerate(zip(sent, got, strict=True)):
                assert_same(item, back, f"{where}[{index}]")
        else:
            assert got == sent, f"{where}: sent {sent!r}, got {got!r}"


def round_trip(client, payload: Any, job_type: str) -> None:
    created = client.post("/api/jobs", json={"type": job_type, "payload": payload})
    assert created.status_code == 201, created.get_json()
    job_id = created.get_json()["id"]
    read = client.get(f"/api/jobs/{job_id}").get_json()["payload"]
    assert_same(payload, read)
    claimed = client.post(
        "/api/internal/jobs/claim", json={"worker_id": "w", "types": [job_type]}, headers=KEY
    ).get_json()["jobs"]
    assert [job["id"] for job in claimed] == [job_id]
    assert_same(payload, claimed[0]["payload"])
    token = claimed[0]["lease_token"]
    items = [
        {"kind": "start", "job_id": job_id, "lease_token": token},
        {"kind": "complete", "job_id": job_id, "lease_token": token, "result": read},  # what the API returned
    ]
    answers = client.post("/api/internal/reports", json={"items": items}, headers=KEY).get_json()["results"]
    assert [answer["code"] for answer in answers] == [200, 200], answers
    assert_same(payload, client.get(f"/api/jobs/{job_id}").get_json()["result"])
    again = client.post("/api/jobs", json={"type": job_type, "payload": read})
    assert again.status_code == 201, again.get_json()  # what the API returned is accepted back


def test_the_probe_s_floats_come_back_floats(client):
    round_trip(client, EXTREMES, "probe")


def test_negative_zero_comes_back_zero_on_both_databases(client):
    created = client.post("/api/jobs", json={"type": "zero", "payload": [-0.0]}).get_json()
    [back] = client.get(f"/api/jobs/{created['id']}").get_json()["payload"]
    assert back == 0.0 and math.copysign(1, back) == 1


def test_any_json_comes_back_with_the_same_values_and_types(client):
    job_types = (f"property-{n}" for n in count())

    # A whole payload that is one integral float is the exception (test below); inside an
    # object or a list every number keeps its type.
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(payload=json_values.filter(lambda value: not (isinstance(value, float) and value.is_integer())))
    def property_holds(payload: Any) -> None:
        round_trip(client, payload, next(job_types))

    property_holds()


def test_a_bare_integral_float_payload_keeps_its_value_and_on_sqlite_becomes_an_integer(client, database_url):
    """The documented rule: SQLite's NUMERIC affinity stores the JSON text 0.0 of a bare payload
    as the integer 0 (inside an object or a list it is kept as written)."""
    created = client.post("/api/jobs", json={"type": "bare", "payload": 2.0}).get_json()
    back = client.get(f"/api/jobs/{created['id']}").get_json()["payload"]
    assert back == 2.0
    assert type(back) is (int if database_url.startswith("sqlite") else float)
