"""A server refuses a weak internal key, and /healthz says when the schema is missing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from webapp import create_app
from webapp.config import ConfigError
from webapp.store.extensions import db
from webapp.store.schema import migration_heads

from tests.conftest import test_config
from tests.support.server import PROJECT_ROOT


@pytest.mark.parametrize("key", ["x", " " * 32, "fifteen-chars!!", "  a-long-key-with-spaces-around  ", "\t" * 20])
def test_a_server_refuses_a_weak_internal_key_and_names_the_variable(database_url, key):
    with pytest.raises(ConfigError, match="JOBWARDEN_INTERNAL_API_KEY is too weak: it needs at least 16 characters"):
        create_app(test_config(database_url, JOBWARDEN_INTERNAL_API_KEY=key))


def test_a_key_of_sixteen_characters_is_enough(database_url):
    app = create_app(test_config(database_url, JOBWARDEN_INTERNAL_API_KEY="sixteen-chars-ok"))
    with app.app_context():
        db.engine.dispose()


def test_jobwarden_run_with_a_one_character_key_exits_with_one_line_naming_it(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'jobwarden.db'}",
        "JOBWARDEN_ENV": "production",
        "JOBWARDEN_INTERNAL_API_KEY": "x",
        "JOBWARDEN_MONITOR": "off",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    try:
        result = subprocess.run(
            [sys.executable, "-m", "webapp", "run", "--port", "0"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the server started with a one-character key")
    assert result.returncode != 0
    assert "JOBWARDEN_INTERNAL_API_KEY is too weak" in result.stderr
    assert "Traceback" not in result.stderr


def test_healthz_answers_503_naming_a_missing_table(app, client):
    assert client.get("/healthz").json == {"status": "ok"}
    db.session.execute(text("DROP TABLE workers"))
    db.session.commit()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert "workers" in response.json["message"] and "jobwarden db upgrade" in response.json["message"]


def test_healthz_answers_503_on_an_empty_database(tmp_path):
    app = create_app(test_config(f"sqlite:///{tmp_path / 'empty.db'}"))
    with app.app_context():
        response = app.test_client().get("/healthz")
        db.engine.dispose()
    assert response.status_code == 503
    assert "jobs" in response.json["message"]


def test_healthz_answers_503_naming_an_old_migration_revision(app, client):
    head = min(migration_heads(app.extensions["migrate"].directory))
    db.session.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
    db.session.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
    db.session.commit()
    try:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert "revision 0001" in response.json["message"] and head in response.json["message"]
        db.session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        db.session.commit()
        assert client.get("/healthz").json == {"status": "ok"}
    finally:
        db.session.rollback()
        db.session.execute(text("DROP TABLE alembic_version"))
        db.session.commit()
