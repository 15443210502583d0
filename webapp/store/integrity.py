"""Refuse to run on a store that cannot be trusted.

A corrupt, truncated or foreign SQLite file stops start-up with a message that
names the file. The check opens the file read-only, so the file stays byte for
byte as it was: nothing here (or anywhere else) resets a store.

Jobwarden's SQLite files carry APPLICATION_ID in their header (`PRAGMA
application_id`, set by the migrations). A file without it is accepted only when
it holds no tables (new) or all of Jobwarden's tables (made before the mark
existed; the next `db upgrade` sets it). On PostgreSQL the mark is the
`alembic_version` table holding one of Jobwarden's revisions.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy.engine import make_url

SQLITE_MAGIC = b"SQLite format 3\x00"
# "JWRN": the SQLite header's application_id of every Jobwarden store (a signed 32-bit value).
APPLICATION_ID = 0x4A57524E
CHECKPOINT_SETTLE_S = 2.0  # how long a live store may look truncated while another process checkpoints


class StoreUnreadable(RuntimeError):
    """The configured database cannot be opened or fails its integrity check."""


class StoreTruncated(StoreUnreadable):
    """The file is shorter than its header says."""


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory and other backends.

    Read from the file name SQLAlchemy's driver will hand to sqlite3, so every form it
    accepts names the file it opens: `sqlite:///rel.db`, `sqlite:////abs.db` and, with
    `?uri=true`, SQLite's own `file:` URIs (`file:/abs.db`, `file:///abs.db`,
    `file:rel.db?mode=rw`, percent-escapes); a `file:` URI without `uri=true` is a
    plain relative name, as the driver takes it.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    [filename], options = url.get_dialect()().create_connect_args(url)
    if options.get("uri") and filename.startswith("file:"):
        parts = urlsplit(filename)
        if parse_qs(parts.query).get("mode") == ["memory"]:
            return None
        filename = unquote(parts.path)
    if filename in ("", ":memory:"):
        return None
    return Path(filename)


def check_sqlite_file(path: Path, *, full_check: bool = True) -> None:
    """Raise StoreUnreadable unless `path` is absent, empty or a sound SQLite file."""
    if not path.exists():
        return
    problem = _header_problem(path)
    # A checkpoint writes the header's new page count before the pages that grow the
    # file: read while another process checkpoints, a live store looks truncated for an
    # instant. With a write-ahead log beside it, look again before refusing.
    settle_until = time.monotonic() + CHECKPOINT_SETTLE_S
    while isinstance(problem, StoreTruncated) and _has_wal(path) and time.monotonic() < settle_until:
        time.sleep(0.02)
        problem = _header_problem(path)
    if problem is not None:
        raise problem
    if not full_check:
        return
    with _read_only(path) as connection:
        problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise StoreUnreadable(
            f"the database file {path} is corrupt ({'; '.join(problems[:3])}); "
            "Jobwarden will not touch it. Restore it from a backup."
        )


def _header_problem(path: Path) -> StoreUnreadable | None:
    """What is wrong with the file's size and header, read directly (no SQLite lock), or None."""
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
        size = path.stat().st_size
    except OSError as error:
        return StoreUnreadable(f"cannot read the database file {path}: {error.strerror}")
    if size == 0:
        return None
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return StoreUnreadable(
            f"the database file {path} is not a SQLite database (its header is wrong); "
            "Jobwarden will not touch it. Restore it from a backup or point DATABASE_URL elsewhere."
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages_in_header = int.from_bytes(header[28:32], "big")
    if page_size < 512 or size % page_size or size < pages_in_header * page_size:
        return StoreTruncated(
            f"the database file {path} is truncated ({size} bytes, its header promises "
            f"{pages_in_header * page_size}); Jobwarden will not touch it. Restore it from a backup."
        )
    return None


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """The file opened read-only (it stays byte for byte as it was); an unreadable one is refused.

    A file in WAL mode opened read-only gets `-wal` and `-shm` files created beside it
    unless they are there already: with neither there, no process has it open and no
    log holds pages the file lacks, so it is read as immutable, which creates nothing.
    """
    mode = "ro" if _has_wal_files(path) or not _in_wal_mode(path) else "ro&immutable=1"
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
        try:
            yield connection
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise StoreUnreadable(
            f"the database file {path} cannot be read: {error}; Jobwarden will not touch it."
        ) from None


def _in_wal_mode(path: Path) -> bool:
    """The header's read and write versions are 2 in WAL mode (1 with a rollback journal)."""
    with path.open("rb") as handle:
        header = handle.read(20)
    return header[18:20] == b"\x02\x02"


def _has_wal_files(path: Path) -> bool:
    return Path(f"{path}-wal").exists() or Path(f"{path}-shm").exists()


def _has_wal(path: Path) -> bool:
    try:
        return Path(f"{path}-wal").stat().st_size > 0
    except OSError:
        return False


# The tables of the first migration: a Jobwarden store made before migrations marked
# it with APPLICATION_ID has them all (and later migrations add to them).
TABLES_BEFORE_THE_MARK = frozenset({"jobs", "job_attempts", "job_events", "workers", "monitor_passes"})


def check_sqlite_owner(path: Path) -> None:
    """Raise StoreUnreadable when `path` is another application's SQLite database.

    Call it after check_sqlite_file; it opens the file read-only.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    with _read_only(path) as connection:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = {
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
        }
    if application_id == APPLICATION_ID:
        return
    if application_id == 0 and (not tables or tables >= TABLES_BEFORE_THE_MARK):
        return
    owner = f"application_id {application_id}" if application_id else f"tables {', '.join(sorted(tables)[:5])}"
    raise StoreUnreadable(
        f"the database file {path} belongs to another application ({owner}); "
        "Jobwarden will not touch it. Point DATABASE_URL at a file of its own."
    )
