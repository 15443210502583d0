"""Fixtures that build a real app on a real, empty database.

Every test that takes `app` runs on SQLite (a fresh file per test) and, when
JOBWARDEN_TEST_POSTGRES_URL is set, again on PostgreSQL (a database created for
this test session, emptied between tests).
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from webapp import create_app
from webapp.store.extensions import db

from tests.support.databases import postgres_test_database

POSTGRES_URL = os.environ.get("JOBWARDEN_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
INTERNAL_KEY = "test-internal-key"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start, stop and kill real processes or search long carry `slow` themselves
    (`pytestmark`); so does every test served by a real gunicorn (the `server` fixture)."""
    for item in items:
        if "server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def test_config(database_url: str, **overrides) -> dict:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "TESTING": True,
        "JOBWARDEN_ENV": "testing",
        "JOBWARDEN_MONITOR": False,
        "JOBWARDEN_INTERNAL_API_KEY": INTERNAL_KEY,
        "JOBWARDEN_RETRY_BASE_S": 5.0,
        "SECRET_KEY": "test-secret",
    }
    config.update(overrides)
    return config


test_config.__test__ = False  # a helper, not a test, despite its name


@pytest.fixture(scope="session")
def postgres_url():
    if not POSTGRES_URL:
        pytest.skip("JOBWARDEN_TEST_POSTGRES_URL is not set")
    with postgres_test_database(POSTGRES_URL) as url:
        yield url


# For a test of something only PostgreSQL does (a data-modifying CTE): it runs there alone.
postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
# For a test of something only SQLite does (its file watcher): it runs there alone.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """An empty database with the schema, on each configured backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobwarden.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def app_config(database_url) -> dict:
    """Settings for the app under test; override entries in a test module's own fixture."""
    return test_config(database_url)


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    with app.app_context():
        db.create_all()
        if db.engine.dialect.name == "postgresql":
            tables = ", ".join(table.name for table in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def backend(app) -> str:
    return db.engine.dialect.name


@pytest.fixture
def server(app, database_url, tmp_path):
    """A real gunicorn server on a loopback port, on the same database as `app`."""
    from tests.support.server import running_server

    with running_server(database_url, tmp_path / "server.log") as running:
        yield running
