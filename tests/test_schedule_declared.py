"""Schedules declared in a worker's code reach the store when the worker starts (real worker
processes, a real server): added, changed, and one no longer declared kept and marked missing."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from webapp.jobs import schedules as store
from webapp.worker.handlers import Registry, RegistryError

from tests.conftest import INTERNAL_KEY
from tests.support.worker_process import launch_worker, wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def run_worker(server_url: str, module: str, log_path: Path) -> subprocess.Popen:
    return launch_worker(server_url, log_path, handlers=(module,))


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def schedules() -> dict:
    return {schedule.name: schedule for schedule in store.all_schedules()}


def test_a_workers_declared_schedules_are_synced_and_never_deleted_silently(server, tmp_path):
    worker = run_worker(server.url, "tests.support.schedule_handlers_first", tmp_path / "first.log")
    try:
        found = wait_for(lambda: len(schedules()) == 2 and schedules(), 60, "the first worker's schedules")
    finally:
        stop(worker)
    nightly = found["nightly-report"]
    assert (nightly.source, nightly.cron, nightly.timezone, nightly.payload) == (
        "code",
        "30 2 * * *",
        "Europe/Berlin",
        {"full": True},
    )
    assert (found["tick"].every_s, found["tick"].missing_from_code) == (3600, False)

    worker = run_worker(server.url, "tests.support.schedule_handlers_second", tmp_path / "second.log")
    try:
        wait_for(lambda: store.get("tick").missing_from_code, 60, "tick marked missing")
    finally:
        stop(worker)
    now = schedules()
    assert set(now) == {"nightly-report", "tick"}  # kept
    assert (now["nightly-report"].cron, now["nightly-report"].payload) == ("45 2 * * *", None)
    history = [event.message for event in store.history(now["tick"].id)]
    assert "no longer declared in code (kept: remove it to stop it)" in history


def test_a_registry_refuses_a_schedule_declared_twice_or_without_a_time():
    registry = Registry()
    registry.schedule("a", every_s=60, type="x")
    with pytest.raises(RegistryError, match="twice"):
        registry.schedule("a", every_s=60, type="x")
    with pytest.raises(RegistryError, match="either cron or every_s"):
        registry.schedule("b", type="x")


def test_a_bad_declared_schedule_is_400_and_changes_nothing(client):
    body = {
        "schedules": [
            {"name": "fine", "type": "x", "every_s": 60},
            {"name": "bad", "type": "x", "cron": "0 3 * * *", "timezone": "Moon/Base"},
        ]
    }
    answer = client.post("/api/internal/schedules/sync", json=body, headers={"Authorization": f"Bearer {INTERNAL_KEY}"})
    assert (answer.status_code, answer.json["field"]) == (400, "timezone")
    assert store.all_schedules() == []
    assert client.post("/api/internal/schedules/sync", json=body).status_code == 401
