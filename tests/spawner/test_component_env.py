"""What the spawner tells each server about component sources and data stores: the config's
sources in order, and only the data stores the user's groups may use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jupyterhub.tests.utils import add_user
from mlfactory.hub.platform_config import PACKAGED_CONFIG, parse_platform_config
from mlfactory.spawner.local import MLFactoryLocalSpawner
from mlfactory.spawner.server_env import component_sources_env, data_stores_env

STORES = [
    {"name": "lake", "kind": "s3", "url": "s3://lake/", "description": "Everyone's lake"},
    {
        "name": "ml-db",
        "kind": "postgresql",
        "url": "postgresql://db/ml",
        "groups": ["ml-engineering"],
    },
    {"name": "ds-files", "kind": "filesystem", "url": "/srv/ds", "groups": ["data-science"]},
]
SOURCES = [
    {"name": "team", "url": "https://git.example.com/ml/components.git", "ref": "v3"},
    {"name": "local", "path": "/srv/components"},
]


@pytest.fixture
def config_data() -> dict:
    data = yaml.safe_load(PACKAGED_CONFIG.read_text())
    data["data_stores"] = STORES
    data["component_sources"] = SOURCES
    return data


def test_component_sources_in_order(config_data):
    config = parse_platform_config(config_data)
    assert json.loads(component_sources_env(config)) == [
        {"name": "team", "url": "https://git.example.com/ml/components.git", "ref": "v3"},
        {"name": "local", "path": "/srv/components"},
    ]


def test_data_stores_by_group(config_data):
    config = parse_platform_config(config_data)

    def names(groups):
        return [s["name"] for s in json.loads(data_stores_env(config, groups))]

    assert names(["ml-engineering"]) == ["lake", "ml-db"]
    assert names(["data-science", "ml-engineering"]) == ["lake", "ml-db", "ds-files"]
    assert names([]) == ["lake"]
    assert json.loads(data_stores_env(config, ["data-science"]))[1] == {
        "name": "ds-files", "kind": "filesystem", "url": "/srv/ds", "description": ""}  # fmt: skip


async def test_the_server_env_carries_both(hub_app, mockhub_config, config_data, tmp_path):
    path = tmp_path / "mlfactory.yaml"
    path.write_text(yaml.safe_dump(config_data))
    app = await hub_app(
        {
            **mockhub_config,
            "JupyterHub": {**mockhub_config["JupyterHub"], "spawner_class": MLFactoryLocalSpawner},
            "MLFactoryLocalSpawner": {
                "user_accounts": "none",
                "platform_config_file": str(path),
                "workspace_root": str(tmp_path / "workspaces"),
                "log_root": str(tmp_path / "logs"),
            },
        }
    )
    user = add_user(app.db, app, name="nora")  # in no group: the default group, data-science
    spawner = user.spawners[""]
    spawner.resource_request = await spawner._resolve()
    env = spawner.get_env()
    assert json.loads(env["MLFACTORY_COMPONENT_SOURCES"]) == json.loads(
        component_sources_env(parse_platform_config(config_data))
    )
    assert [s["name"] for s in json.loads(env["MLFACTORY_DATA_STORES"])] == ["lake", "ds-files"]
    assert Path(spawner.platform_config_file) == path
