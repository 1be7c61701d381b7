"""Fixtures for the server-extension tests: a jupyter server with mlfactory enabled,
authentication required everywhere, token users named "alice", and a clean environment.
"""

from __future__ import annotations

import asyncio

import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User

CALLER = "alice"

# Variables the extension reads; each test starts without them.
_ENV = ("JUPYTERHUB_USER", "JUPYTERHUB_API_TOKEN", "MLFACTORY_PROFILE")


class NamedTokenIdentityProvider(IdentityProvider):
    """Token callers get a fixed name instead of jupyter_server's random anonymous one,
    standing in for JupyterHub's identity provider, which names the hub user."""

    def generate_anonymous_user(self, handler):
        return User(username=CALLER)


@pytest.fixture(autouse=True)
async def jp_asyncio_loop():
    """One event loop for the server and the test.

    pytest-jupyter serves on its own loop and runs async tests there, but with
    ``asyncio_mode = "auto"`` pytest-asyncio runs them on its loop instead, and every
    request then times out. Handing pytest-jupyter pytest-asyncio's loop joins the two;
    pytest-asyncio closes it.
    """
    return asyncio.get_running_loop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            # terminals off: pytest-jupyter adds them otherwise, and they are not ours to test
            "jpserver_extensions": {"mlfactory.server": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
            "identity_provider_class": NamedTokenIdentityProvider,
        },
        # not a fork of the test runner per server: the worker has tests of its own
        "ComponentLibrary": {"early_build": "thread"},
    }


def _spawned_by_hub(monkeypatch, owner: str) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-api-token")
    monkeypatch.setenv("JUPYTERHUB_USER", owner)


# These set the environment the server starts in: list them before jp_fetch/jp_serverapp.
@pytest.fixture
def hub_server_of_caller(monkeypatch):
    """JupyterHub spawned this server for the caller (alice)."""
    _spawned_by_hub(monkeypatch, CALLER)


@pytest.fixture
def hub_server_shared_with_caller(monkeypatch):
    """JupyterHub spawned this server for bob, who shared it with the caller (alice)."""
    _spawned_by_hub(monkeypatch, "bob")


class DenyAllAuthorizer(Authorizer):
    """Records what @authorized asked and says no, like a hub scope check that fails."""

    asked: list[tuple[str, str]] = []

    def is_authorized(self, handler, user, action, resource):
        self.asked.append((action, resource))
        return False


@pytest.fixture
def deny_all(jp_server_config):
    DenyAllAuthorizer.asked = []
    jp_server_config["ServerApp"]["authorizer_class"] = DenyAllAuthorizer
    return DenyAllAuthorizer
