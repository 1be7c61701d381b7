"""The platform config's ``sharing.workspaces.realtime`` reaches every server as
MLFACTORY_REALTIME, which the server extension turns into jupyter-server-ydoc's own switch."""

from __future__ import annotations

import pytest
import yaml
from mlfactory.hub.platform_config import PACKAGED_CONFIG, ConfigError, parse_platform_config
from mlfactory.server.collaboration import realtime_from_env
from mlfactory.spawner.server_env import platform_env


def _config(sharing: dict | None = None):
    data = yaml.safe_load(PACKAGED_CONFIG.read_text())
    if sharing is not None:
        data["sharing"] = sharing
    return parse_platform_config(data)


@pytest.mark.parametrize(
    ("sharing", "on"),
    [
        (None, True),  # the shipped config: on
        ({"workspaces": {"realtime": True}}, True),
        ({"workspaces": {"realtime": False}}, False),
    ],
)
def test_the_switch_reaches_the_server(sharing, on):
    env = platform_env(_config(sharing), ["data-science"])
    assert env["MLFACTORY_REALTIME"] == ("1" if on else "0")
    assert realtime_from_env(env) is on


def test_a_misspelt_key_is_an_error():
    with pytest.raises(ConfigError, match="realtme"):
        _config({"workspaces": {"realtme": False}})
