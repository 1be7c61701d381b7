"""MLFactoryServerApp: how the extension is found, and the traits it reads from the spawner."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlfactory.server
import pytest
from mlfactory.server.app import MLFactoryServerApp

SERVER_EXT = Path(mlfactory.server.__file__).parent


def test_extension_points_name_the_app():
    assert mlfactory.server._jupyter_server_extension_points() == [
        {"module": "mlfactory.server", "app": MLFactoryServerApp}
    ]
    assert MLFactoryServerApp.name == "mlfactory"
    assert MLFactoryServerApp.load_other_extensions is True


def test_shipped_config_enables_the_extension():
    config = json.loads((SERVER_EXT / "jupyter_server_config.d" / "mlfactory.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"mlfactory.server": True}}}


@pytest.fixture
def app_log(caplog):
    caplog.set_level(logging.WARNING, logger="mlfactory-test")
    return logging.getLogger("mlfactory-test")


def test_profile_from_env(monkeypatch, app_log):
    monkeypatch.setenv("MLFACTORY_PROFILE", json.dumps({"name": "cpu-small", "cpu": 2}))
    assert MLFactoryServerApp(log=app_log).profile == {"name": "cpu-small", "cpu": 2}


def test_profile_unset_is_none(app_log, caplog):
    assert MLFactoryServerApp(log=app_log).profile is None
    assert not caplog.records


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"cpu-small"'])
def test_bad_profile_warns_and_is_none(monkeypatch, app_log, caplog, raw):
    monkeypatch.setenv("MLFACTORY_PROFILE", raw)
    assert MLFactoryServerApp(log=app_log).profile is None
    assert "MLFACTORY_PROFILE" in caplog.text


def test_config_overrides_env(monkeypatch, app_log):
    monkeypatch.setenv("MLFACTORY_PROFILE", '{"name": "from-env"}')
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    app = MLFactoryServerApp(log=app_log, profile={"name": "from-config"}, owner="carol")
    assert app.profile == {"name": "from-config"}
    assert app.owner == "carol"


def test_owner_defaults(monkeypatch, app_log):
    assert MLFactoryServerApp(log=app_log).owner is None
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert MLFactoryServerApp(log=app_log).owner == "alice"
