"""When PostgreSQL stops answering mid-life, the API says 503 (which clients and
workers retry) and /healthz says so too, instead of a 500; when it is back, so is the app."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from webapp import create_app
from webapp.store.extensions import db

from tests.conftest import POSTGRES_URL, test_config
from tests.support.databases import postgres_test_database

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="needs JOBWARDEN_TEST_POSTGRES_URL (a PostgreSQL server)"),
]


def set_connections(admin, name: str, allowed: bool) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )


def test_a_database_outage_is_a_503_and_the_app_recovers_after_it():
    with postgres_test_database(POSTGRES_URL) as url:
        name = make_url(url).database
        admin = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        app = create_app(test_config(url))
        with app.app_context():
            db.create_all()
        client = app.test_client()
        assert client.post("/api/jobs", json={"type": "x"}).status_code == 201
        set_connections(admin, name, allowed=False)
        try:
            listed = client.get("/api/jobs")
            assert (listed.status_code, listed.json["error"]) == (503, "unavailable")
            assert (
                client.post(
                    "/api/internal/jobs/claim",
                    json={"worker_id": "w"},
                    headers={"Authorization": "Bearer test-internal-key"},
                ).status_code
                == 503
            )
            assert client.get("/healthz").status_code == 503
            assert client.get("/jobs").status_code == 503
        finally:
            set_connections(admin, name, allowed=True)
        assert client.get("/api/jobs").json["jobs"][0]["type"] == "x"
        with app.app_context():
            db.engine.dispose()
        admin.dispose()
