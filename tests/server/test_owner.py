"""Owner rules: who JupyterHub says owns the server, and who may act as the owner."""

from __future__ import annotations

import pytest
from mlfactory.server.owner import is_owner, owner_from_env


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"JUPYTERHUB_USER": "alice", "JUPYTERHUB_API_TOKEN": "t"}, "alice"),
        ({"JUPYTERHUB_USER": "alice"}, "alice"),
        # started by the hub but the user is missing: a name nobody matches
        ({"JUPYTERHUB_API_TOKEN": "t"}, ""),
        ({"HOME": "/home/alice", "USER": "alice"}, None),
    ],
)
def test_owner_from_env(environ, expected):
    assert owner_from_env(environ) == expected


@pytest.mark.parametrize(
    ("caller", "owner", "expected"),
    [
        ("alice", "alice", True),
        ("bob", "alice", False),
        ("Alice", "alice", False),
        ("alice", "alice ", False),
        ("", "", False),
        ("alice", "", False),
        # standalone server: the token holder is the owner whatever jupyter_server names them
        ("Anonymous Io", None, True),
    ],
)
def test_is_owner(caller, owner, expected):
    assert is_owner(caller, owner) is expected
