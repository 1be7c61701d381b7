"""Where the platform runs (``platform_runtime``, re-exported by ``platform_config``): each path
is defined once, and the hub config, the spawner, the platform service and the command line
all take it from there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from mlfactory.hub import platform_config
from mlfactory.hub.hubconfig import apply_embedded_defaults
from mlfactory.hub.platform_config import (
    PACKAGED_CONFIG,
    accounts_db_url,
    config_path,
    data_dir,
    hub_address,
    hub_state_dir,
    journal_dir,
    platform_db_url,
    prepare_data_dir,
    server_logs_dir,
    workspaces_dir,
)
from mlfactory.service.app import PlatformService
from mlfactory.service.components import components_dir
from mlfactory.spawner.local import MLFactoryLocalSpawner
from traitlets.config import Config


class _FakeUser:
    """The few User attributes the spawner reads outside a hub."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = f"/user/{name}/"
        self.escaped_name = name


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "state"))
    monkeypatch.setenv("MLFACTORY_CONFIG", str(tmp_path / "platform.yaml"))
    return (tmp_path / "state").resolve()


def test_the_data_folder_layout(data, tmp_path):
    assert data_dir() == data
    assert config_path() == tmp_path / "platform.yaml"
    assert hub_state_dir() == data / "hub"
    assert journal_dir() == data / "runtime" / "servers"
    assert server_logs_dir() == data / "logs" / "servers"
    assert workspaces_dir() == data / "workspaces"
    assert accounts_db_url() == f"sqlite:///{data / 'hub' / 'accounts.sqlite'}"
    assert accounts_db_url(tmp_path) == f"sqlite:///{tmp_path / 'hub' / 'accounts.sqlite'}"
    assert platform_db_url() == f"sqlite:///{data / 'hub' / 'platform.sqlite'}"
    assert prepare_data_dir() == data / "hub"
    assert (data / "hub").stat().st_mode & 0o777 == 0o700
    assert (data / "logs").stat().st_mode & 0o777 == 0o700


def test_the_config_file_defaults_to_the_shipped_example(monkeypatch):
    monkeypatch.delenv("MLFACTORY_CONFIG", raising=False)
    assert config_path() == PACKAGED_CONFIG
    assert PACKAGED_CONFIG.is_file()


def test_spawner_service_and_hub_config_agree(data):
    spawner = MLFactoryLocalSpawner(user=_FakeUser("erin"))
    assert spawner.platform_config_file == str(config_path())
    assert spawner.journal_root == str(journal_dir())
    assert spawner.workspace_root == str(workspaces_dir())
    assert spawner.log_root == str(server_logs_dir())
    assert PlatformService().config_file == str(config_path())
    assert components_dir() == hub_state_dir() / "components"
    c = Config()
    apply_embedded_defaults(c, {})
    assert c.MLFactoryLocalSpawner.workspace_root == spawner.workspace_root
    assert c.MLFactoryLocalSpawner.log_root == spawner.log_root
    assert c.MLFactoryAuthenticator.accounts_db_url == accounts_db_url()
    assert c.JupyterHub.db_url == f"sqlite:///{hub_state_dir() / 'jupyterhub.sqlite'}"


def test_hub_address_from_the_environment():
    assert hub_address({}) == ("127.0.0.1", 8000)
    assert hub_address({"MLFACTORY_IP": "10.0.0.5", "MLFACTORY_PORT": "8081"}) == ("10.0.0.5", 8081)
    with pytest.raises(ValueError):
        hub_address({"MLFACTORY_PORT": "eighty"})


def test_the_ground_floor_imports_no_other_mlfactory_part():
    """platform_config and the modules it re-exports (the schema's in five) import only
    each other."""
    here = Path(platform_config.__file__).parent
    family = {
        "platform_config",
        "platform_schema",
        "platform_schema_data",
        "platform_schema_backends",
        "platform_schema_auth",
        "schema_types",
        "platform_runtime",
    }
    for name in family:
        tree = ast.parse((here / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 and node.module in family, (name, node.module)
            elif isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("mlfactory"), (name, node.module)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("mlfactory") for a in node.names), name
