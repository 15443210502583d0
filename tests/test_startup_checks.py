"""A server refuses a weak internal key, and /healthz says when the schema is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from webapp import create_app
from webapp.config import ConfigError
from webapp.store.extensions import db
from webapp.store.schema import migration_heads, migrations_directory

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
    head = min(migration_heads())
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


def test_the_newest_revisions_read_without_alembic_are_alembics():
    """The web process reads the migration heads from the files (webapp.store.schema); Alembic agrees."""
    from alembic.script import ScriptDirectory

    assert migration_heads() == frozenset(ScriptDirectory(str(migrations_directory())).get_heads())


def test_a_serving_process_loads_no_migration_tooling_and_no_oidc_client(tmp_path):
    """Alembic, Mako and Pygments (about 8 MiB) are the command line's, and Authlib with requests
    (about 17 MiB) is loaded only when OpenID Connect is configured: every dashboard page,
    /healthz and the API leave them unloaded. So do argon2 (until a password is checked) and
    APScheduler's triggers with tzlocal (until a schedule's time is read)."""
    script = f"""
import json
import sys
from webapp import create_app
from webapp.store.extensions import db
app = create_app({test_config(f"sqlite:///{tmp_path / 'jobwarden.db'}")!r})
with app.app_context():
    db.create_all()
client = app.test_client()
for path in ("/jobs", "/jobs/counts", "/health", "/stats", "/schedules", "/queues", "/webhooks", "/healthz", "/api/jobs"):
    assert client.get(path).status_code == 200, path
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""
    answer = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True
    )
    loaded = set(json.loads(answer.stdout.strip().splitlines()[-1]))
    assert "flask" in loaded and "sqlalchemy" in loaded
    assert not loaded & {"alembic", "flask_migrate", "mako", "pygments"}
    assert not loaded & {"authlib", "joserfc", "requests"}
    assert "urllib3" not in loaded  # the webhook delivery comes with the monitor's scheduler, off here
    assert not loaded & {"argon2", "_argon2_cffi_bindings", "apscheduler", "tzlocal", "croniter", "dateutil"}
