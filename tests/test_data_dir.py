"""The data directory holds the secret key and the default store; the documented
default (docs/configuration.md) is the real one (issue 15)."""

from __future__ import annotations

from pathlib import Path

from webapp import config, create_app

from tests.conftest import test_config
from tests.support.server import PROJECT_ROOT


def test_a_checkout_keeps_its_data_in_instance_and_the_configuration_reference_says_so():
    assert config.data_dir({}) == PROJECT_ROOT / "instance"
    assert config.default_database_url({}) == f"sqlite:///{PROJECT_ROOT / 'instance' / 'jobwarden.db'}"
    reference = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    assert "`sqlite:////path/to/checkout/instance/jobwarden.db`" in reference


def test_jobwarden_data_dir_holds_the_default_store_and_the_secret_key(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("JOBWARDEN_DATA_DIR", str(data))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("JOBWARDEN_SECRET_KEY", raising=False)

    settings = test_config(config.default_database_url(), SECRET_KEY=None)
    app = create_app(settings)

    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{data / 'jobwarden.db'}"
    assert Path(data / "secret_key").read_text().strip() == app.config["SECRET_KEY"]
    assert config.from_environment()["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{data / 'jobwarden.db'}"
