"""A corrupt or unreadable store stops start-up with a clear message and is
left byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from webapp import create_app, jobs
from webapp.store.extensions import db
from webapp.store.integrity import StoreUnreadable

from tests.conftest import test_config
from tests.factories import make_job

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def healthy_store(tmp_path) -> Path:
    """A real store with a few hundred jobs, closed cleanly."""
    path = tmp_path / "store.db"
    app = create_app(test_config(f"sqlite:///{path}"))
    with app.app_context():
        db.create_all()
        jobs.create_jobs([{"type": "video", "payload": {"n": i, "pad": "x" * 200}} for i in range(400)])
        db.session.remove()
        db.engine.dispose()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


def start(path: Path):
    return create_app(test_config(f"sqlite:///{path}"))


def test_a_healthy_store_starts_and_is_not_changed_by_the_check(healthy_store):
    before = checksum(healthy_store)
    from webapp.store.integrity import check_sqlite_file

    check_sqlite_file(healthy_store)

    assert checksum(healthy_store) == before


def test_a_file_of_garbage_bytes_stops_start_up_and_is_left_as_it_was(tmp_path):
    path = tmp_path / "store.db"
    path.write_bytes(bytes(range(256)) * 64)
    before = checksum(path)

    with pytest.raises(StoreUnreadable, match=f"{path}.*not a SQLite database"):
        start(path)

    assert checksum(path) == before


def test_a_file_that_is_not_sqlite_stops_start_up(tmp_path):
    path = tmp_path / "store.db"
    path.write_text(json.dumps({"jobs": []}))
    before = checksum(path)

    with pytest.raises(StoreUnreadable, match="not a SQLite database"):
        start(path)

    assert checksum(path) == before


@pytest.mark.parametrize("cut", ["mid-page", "page-boundary"])
def test_a_truncated_store_stops_start_up_and_is_left_as_it_was(healthy_store, cut):
    data = healthy_store.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    keep = len(data) // 2 + (123 if cut == "mid-page" else 0)
    keep -= 0 if cut == "mid-page" else keep % page_size
    healthy_store.write_bytes(data[:keep])
    before = checksum(healthy_store)

    with pytest.raises(StoreUnreadable, match=f"{healthy_store}.*truncated"):
        start(healthy_store)

    assert checksum(healthy_store) == before


def cut_to_fewer_pages(store: Path) -> bytes:
    """The state a reader meets mid-checkpoint: the header already promises pages the file has yet to grow."""
    data = store.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    store.write_bytes(data[: len(data) - 2 * page_size])
    Path(f"{store}-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(4092))  # another process's log
    return data


def test_a_live_store_read_mid_checkpoint_is_not_taken_for_a_truncated_one(healthy_store):
    """Seen in a full test run: one of eight processes starting while the others wrote
    refused the store as truncated. With a write-ahead log beside it the check looks again."""
    from webapp.store.integrity import check_sqlite_file

    whole = cut_to_fewer_pages(healthy_store)
    checkpoint_ends = threading.Timer(0.3, healthy_store.write_bytes, args=(whole,))
    checkpoint_ends.start()
    try:
        check_sqlite_file(healthy_store, full_check=False)
    finally:
        checkpoint_ends.join()
    assert healthy_store.read_bytes() == whole


def test_a_store_that_stays_truncated_beside_its_log_is_still_refused_and_left_as_it_was(healthy_store):
    from webapp.store.integrity import CHECKPOINT_SETTLE_S, check_sqlite_file

    cut_to_fewer_pages(healthy_store)
    before = checksum(healthy_store)
    began = time.monotonic()
    with pytest.raises(StoreUnreadable, match=f"{healthy_store}.*truncated"):
        check_sqlite_file(healthy_store, full_check=False)
    assert time.monotonic() - began >= CHECKPOINT_SETTLE_S
    assert checksum(healthy_store) == before


def test_garbage_inside_a_store_stops_start_up_and_is_left_as_it_was(healthy_store):
    data = bytearray(healthy_store.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    # Overwrite the middle of the file, keeping the header and the size intact.
    middle = (len(data) // page_size // 2) * page_size
    data[middle : middle + 2 * page_size] = b"\xde\xad\xbe\xef" * (page_size // 2)
    healthy_store.write_bytes(bytes(data))
    before = checksum(healthy_store)

    with pytest.raises(StoreUnreadable, match=f"{healthy_store}"):
        start(healthy_store)

    assert checksum(healthy_store) == before


def test_every_cli_command_refuses_a_corrupt_store_with_the_message(tmp_path):
    path = tmp_path / "store.db"
    path.write_bytes(b"definitely not a database" * 100)
    before = checksum(path)

    result = subprocess.run(
        [sys.executable, "-m", "webapp", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "DATABASE_URL": f"sqlite:///{path}",
            "JOBWARDEN_INTERNAL_API_KEY": "k",
            "PATH": "/usr/bin:/bin",
            "JOBWARDEN_MONITOR": "off",
        },
    )

    assert result.returncode == 1
    assert f"Error: the database file {path} is not a SQLite database" in result.stderr
    assert "Traceback" not in result.stderr
    assert checksum(path) == before


def test_stored_json_that_cannot_be_parsed_raises_and_is_not_replaced(tmp_path):
    path = tmp_path / "store.db"
    app = start(path)
    with app.app_context():
        db.create_all()
        job = make_job(payload={"frames": 10})
        job_id = job.id
        db.session.remove()
        db.engine.dispose()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE jobs SET payload = '{\"frames\": 1' WHERE id = ?", (job_id,))
    raw.commit()
    raw.close()

    with app.app_context():
        with pytest.raises(ValueError):
            jobs.get_job(job_id).payload  # noqa: B018 - loading the row parses the JSON
        db.session.remove()
        db.engine.dispose()

    raw = sqlite3.connect(path)
    assert raw.execute("SELECT payload FROM jobs WHERE id = ?", (job_id,)).fetchone() == ('{"frames": 1',)
    raw.close()
