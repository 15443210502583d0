"""/api/health names the queued types no live worker takes (the health page's alerts), on each database."""

from __future__ import annotations

from webapp import jobs

from tests.factories import make_job


def test_api_health_lists_queued_types_no_live_worker_takes(client):
    jobs.register_worker("w-1", types=["mail.send"], concurrency=1)
    make_job("queued", type="mail.send")
    make_job("queued", type="video.encode")
    assert client.get("/api/health").get_json()["unserved_types"] == ["video.encode"]


def test_api_health_lists_none_when_a_live_worker_takes_any_type(client):
    jobs.register_worker("w-any", types=None, concurrency=1)
    make_job("queued", type="video.encode")
    assert client.get("/api/health").get_json()["unserved_types"] == []


def test_api_health_lists_every_queued_type_when_no_worker_is_alive(client):
    make_job("queued", type="video.encode")
    assert client.get("/api/health").get_json()["unserved_types"] == ["video.encode"]
