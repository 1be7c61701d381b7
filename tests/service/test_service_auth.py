"""How the platform service authenticates: one HubOAuth shared with JupyterHub's OAuth
callback, a short cache of the hub's answers, and no OAuth secrets in its log. The real-hub
tests are tests/e2e/test_dashboard_hub.py and tests/e2e/test_tokens.py."""

from __future__ import annotations

import logging

import pytest
from jupyterhub.services.auth import HubOAuth
from mlfactory.service.app import AUTH_CACHE_SECONDS, make_hub_auth
from mlfactory.spawner.singleuser import AUTH_CACHE_SECONDS as SERVER_CACHE_SECONDS
from mlfactory.spawner.singleuser import with_auth_cache_bound


@pytest.fixture
def no_hub_oauth_instance():
    HubOAuth.clear_instance()
    yield
    HubOAuth.clear_instance()


def test_the_service_hub_auth_is_the_instance_jupyterhub_reads(no_hub_oauth_instance):
    hub_auth = make_hub_auth()
    # HubOAuthCallbackHandler (and every HubOAuthenticated default) reads .instance()
    assert HubOAuth.instance() is hub_auth
    assert hub_auth.cache_max_age == AUTH_CACHE_SECONDS
    assert 0 < AUTH_CACHE_SECONDS <= 3  # 0 would mean "for ever" to HubAuth's cache


def test_the_users_server_keeps_the_hubs_answers_seconds_not_minutes():
    assert with_auth_cache_bound(["--ServerApp.root_dir=/w"]) == [
        "--ServerApp.root_dir=/w",
        f"--HubOAuth.cache_max_age={SERVER_CACHE_SECONDS}",
    ]
    assert 0 < SERVER_CACHE_SECONDS <= 3
    # an admin's own setting (Spawner.args) wins
    mine = ["--HubOAuth.cache_max_age=10"]
    assert with_auth_cache_bound(mine) == mine


async def test_a_bad_oauth_callback_answers_json_and_logs_no_code(service, caplog):
    svc = await service()
    caplog.set_level(logging.INFO, logger="tornado.access")
    code, body, headers = await svc.call(
        "GET", "/oauth_callback?code=the-one-time-code&state=not-the-cookies-state"
    )
    assert code == 403
    assert headers["Content-Type"] == "application/json"
    assert body == {"error": "oauth state does not match. Try logging in again."}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /services/mlfactory/oauth_callback?code=[secret]&state=[secret]" in logged
    assert "the-one-time-code" not in logged
