"""Another application's SQLite file is refused by every command and left byte for
byte as it was; Jobwarden's own stores (new, old or current) keep working; `--help`
creates nothing (issue 13, item 7)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from webapp.store.integrity import APPLICATION_ID

from tests.support.server import PROJECT_ROOT, free_port

# Real processes, kills or long searches: left out of `make test-fast`.
pytestmark = pytest.mark.slow


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def jobwarden(
    *args: str, database: Path, data_dir: Path, cwd: Path | None = None, url: str | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": url or f"sqlite:///{database}",
        "JOBWARDEN_DATA_DIR": str(data_dir),
        "JOBWARDEN_INTERNAL_API_KEY": "k",
        "JOBWARDEN_MONITOR": "off",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "webapp", *args],
        cwd=cwd or PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def application_id(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA application_id").fetchone()[0]
    finally:
        connection.close()


@pytest.fixture(params=["other tables", "other application_id", "other tables, WAL mode"])
def foreign_file(request, tmp_path) -> Path:
    """A valid SQLite file of some other application, in rollback-journal or WAL mode
    (closed: its -wal and -shm files are gone, as they are when nothing has it open)."""
    path = tmp_path / "contacts.db"
    connection = sqlite3.connect(path)
    if request.param.endswith("WAL mode"):
        assert connection.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    if request.param.startswith("other tables"):
        connection.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)")
        connection.executemany("INSERT INTO contacts (name) VALUES (?)", [(f"n{i}",) for i in range(100)])
    else:
        connection.execute("PRAGMA application_id = 1196444237")  # a GeoPackage, without tables yet
        connection.execute("PRAGMA user_version = 7")
    connection.commit()
    connection.close()
    return path


def commands() -> list[list[str]]:
    return [
        ["db", "upgrade"],
        ["db", "current"],
        ["db", "stamp", "head"],
        ["monitor", "--once"],
        ["run", "--port", str(free_port())],
        ["dev", "--port", str(free_port()), "--no-samples"],
        ["serve", "--port", str(free_port())],
    ]


@pytest.mark.parametrize("command", commands(), ids=lambda c: " ".join(c[:2]))
def test_every_command_refuses_a_foreign_sqlite_file_and_leaves_it_unchanged(foreign_file, tmp_path, command):
    before = checksum(foreign_file)
    siblings_before = sorted(p.name for p in foreign_file.parent.iterdir())

    result = jobwarden(*command, database=foreign_file, data_dir=tmp_path / "data")

    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"the database file {foreign_file} belongs to another application" in lines[0]
    assert checksum(foreign_file) == before
    assert sorted(p.name for p in foreign_file.parent.iterdir()) == siblings_before  # no -journal, -wal, data/


# Every way to name the file that SQLAlchemy's SQLite driver accepts (issue 24, item 8).
URL_FORMS = {
    "file: URI": lambda path: f"sqlite:///file:{path}?uri=true",
    "file:/// URI": lambda path: f"sqlite:///{path.as_uri()}?uri=true",
    "file://localhost URI": lambda path: f"sqlite:///file://localhost{path}?uri=true",
    "file: URI, percent-escaped, mode=rw": lambda path: f"sqlite:///file:{quote(str(path))}?mode=rw&uri=true",
    "driver named": lambda path: f"sqlite+pysqlite:///{path}",
}


@pytest.mark.parametrize("form", URL_FORMS)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["monitor", "--once"]], ids=" ".join)
def test_every_url_form_names_the_file_that_is_checked(tmp_path, form, command):
    foreign = tmp_path / "a dir" / "contacts.db"
    foreign.parent.mkdir()
    connection = sqlite3.connect(foreign)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)")
    connection.close()
    before = checksum(foreign)

    result = jobwarden(*command, database=foreign, data_dir=tmp_path / "data", url=URL_FORMS[form](foreign))

    assert result.returncode != 0
    assert f"the database file {foreign} belongs to another application" in result.stderr, result.stderr
    assert checksum(foreign) == before
    assert sorted(p.name for p in foreign.parent.iterdir()) == ["contacts.db"]


def test_a_new_store_named_by_a_file_uri_is_made_and_marked_where_the_uri_says(tmp_path):
    store = tmp_path / "new.db"

    result = jobwarden(
        "db", "upgrade", database=store, data_dir=tmp_path / "data", url=f"sqlite:///file:{store}?uri=true"
    )

    assert result.returncode == 0, result.stderr
    assert application_id(store) == APPLICATION_ID


def test_db_upgrade_marks_a_new_store_as_jobwarden_s(tmp_path):
    store = tmp_path / "new.db"

    result = jobwarden("db", "upgrade", database=store, data_dir=tmp_path / "data")

    assert result.returncode == 0, result.stderr
    assert application_id(store) == APPLICATION_ID
    assert jobwarden("monitor", "--once", database=store, data_dir=tmp_path / "data").returncode == 0


def test_an_empty_file_is_a_new_store_not_a_foreign_one(tmp_path):
    store = tmp_path / "empty.db"
    store.touch()

    result = jobwarden("db", "upgrade", database=store, data_dir=tmp_path / "data")

    assert result.returncode == 0, result.stderr
    assert application_id(store) == APPLICATION_ID


def test_a_store_from_before_the_mark_keeps_working_and_the_upgrade_marks_it(tmp_path):
    store, data = tmp_path / "old.db", tmp_path / "data"
    assert jobwarden("db", "upgrade", "0001", database=store, data_dir=data).returncode == 0
    assert application_id(store) == 0

    before = store.read_bytes()
    behind = jobwarden("monitor", "--once", database=store, data_dir=data)
    assert behind.returncode == 1 and "run `jobwarden db upgrade`" in behind.stderr, behind.stderr
    assert len(behind.stderr.strip().splitlines()) == 1 and store.read_bytes() == before
    upgrade = jobwarden("db", "upgrade", database=store, data_dir=data)
    assert upgrade.returncode == 0, upgrade.stderr
    assert application_id(store) == APPLICATION_ID
    monitor = jobwarden("monitor", "--once", database=store, data_dir=data)
    assert monitor.returncode == 0, monitor.stderr


HELP_INVOCATIONS = [
    [],
    ["--help"],
    ["db", "--help"],
    ["db", "upgrade", "--help"],
    ["db", "current", "--help"],
    ["monitor", "--help"],
    ["run", "--help"],
    ["dev", "--help"],
    ["serve", "--help"],
    ["worker", "--help"],
    ["jobs", "--help"],
    ["submit", "--help"],
    ["bogus"],  # an unknown command: a usage error, and nothing created
    ["bogus", "--help"],
]


@pytest.mark.parametrize("args", HELP_INVOCATIONS, ids=lambda a: " ".join(a) or "no arguments")
def test_help_creates_nothing(tmp_path, args):
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    result = jobwarden(*args, database=tmp_path / "store.db", data_dir=tmp_path / "data", cwd=cwd)

    assert "Usage:" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cwd"]


def test_help_on_a_foreign_file_shows_help_and_touches_nothing(foreign_file, tmp_path):
    before = checksum(foreign_file)

    result = jobwarden("--help", database=foreign_file, data_dir=tmp_path / "data")

    assert result.returncode == 0
    assert "Traceback" not in result.stderr and "db" in result.stdout
    assert checksum(foreign_file) == before
