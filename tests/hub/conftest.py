"""Hub-side fixtures: an injectable clock, a temporary account database, cheap scrypt cost,
and a started MockHub (pytest-jupyterhub's ``hub_app``) running MLFactoryAuthenticator."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlfactory.hub
import pytest
from mlfactory.hub.account_store import AccountStore
from mlfactory.hub.authenticator import MLFactoryAuthenticator

# Hashes stay real scrypt, just cheap: tests hash dozens of passwords.
FAST_COST = {"n": 16, "r": 1, "p": 1}
TEMPLATES = str(Path(mlfactory.hub.__file__).parent / "templates")


class FakeClock:
    """Aware-UTC time that only moves when a test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def accounts_db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'accounts.sqlite'}"


@pytest.fixture
def store(accounts_db_url):
    s = AccountStore(accounts_db_url)
    yield s
    s.close()


@pytest.fixture
def make_authenticator(accounts_db_url, clock):
    """Build authenticators on the same database (a new one stands for a hub restart)."""
    made = []

    def make(**traits) -> MLFactoryAuthenticator:
        traits.setdefault("accounts_db_url", accounts_db_url)
        traits.setdefault("password_hash_cost", FAST_COST)
        traits.setdefault("clock", clock)
        auth = MLFactoryAuthenticator(**traits)
        made.append(auth)
        return auth

    yield make
    for auth in made:
        if auth._store is not None:
            auth._store.close()


@pytest.fixture
def accounts_hub(hub_app, accounts_db_url, clock, mockhub_config):
    """Start a MockHub with MLFactoryAuthenticator:
    ``await accounts_hub(template_vars={...}, **authenticator_traits)``.

    The proxy is the real configurable-http-proxy (MockHub starts it).
    """

    async def start(template_vars: dict | None = None, **traits):
        auth_config = {
            "accounts_db_url": accounts_db_url,
            "password_hash_cost": FAST_COST,
            "admin_users": {"boss"},
            **traits,
        }
        config = copy.deepcopy(mockhub_config)
        config["JupyterHub"].update(
            authenticator_class=MLFactoryAuthenticator,
            template_paths=[TEMPLATES],
            template_vars=template_vars or {},
        )
        config["MLFactoryAuthenticator"] = auth_config
        app = await hub_app(config=config)
        app.authenticator.clock = clock
        return app

    return start
