"""The platform service's hub client against a real JupyterHub with 1,000 users and 250
groups: it must see every one of them. JupyterHub pages ``/users`` and ``/groups`` only for
``Accept: application/jupyterhub-pagination+json`` and otherwise answers a plain list cut
at ``api_page_max_limit`` (200), which a stand-in hub once hid."""

from __future__ import annotations

import pytest
from mlfactory.service.culler import Culler
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.hubapi import HubAPI

from .conftest import discard_hub, example_config, prepare_hub, start_hub
from .helpers import HubClient

pytestmark = [pytest.mark.hub]

USERS = [f"page-user-{i:04d}" for i in range(1000)]
GROUPS = [f"page-group-{i:03d}" for i in range(250)]
LAST_GROUP = GROUPS[-1]  # created last: beyond the first page of 200 groups


def hub_api(admin: HubClient, path: str, body: dict) -> None:
    r = admin.post(f"/hub/api{path}", json=body, timeout=120)
    assert r.status_code in (200, 201), r.text


@pytest.fixture(scope="module")
def crowded_hub():
    """A real hub with 1,000 users and 250 groups; the last group holds every user."""
    data, config_path = prepare_hub("pagination", example_config())
    hub = start_hub(data, config=config_path)
    try:
        admin = HubClient(hub)
        hub_api(admin, "/users", {"usernames": USERS})
        hub_api(admin, "/groups", {"groups": GROUPS})
        hub_api(admin, f"/groups/{LAST_GROUP}/users", {"users": USERS})
        yield hub, admin.token
    finally:
        discard_hub(hub, config_path)


async def test_the_service_sees_every_user_and_group_of_a_real_hub(crowded_hub):
    hub, token = crowded_hub
    api = HubAPI(f"{hub.url}/hub/api", token)
    names = [u["name"] async for u in api.users()]
    assert len(names) == len(set(names))  # no page read twice
    missing = set(USERS) - set(names)
    assert not missing, f"{len(missing)} of 1,000 users not seen, e.g. {sorted(missing)[:3]}"
    groups = {g["name"]: g["users"] for g in await api.groups()}
    assert set(GROUPS) <= set(groups), f"{len(set(GROUPS) - set(groups))} groups not seen"
    assert sorted(groups[LAST_GROUP]) == USERS


async def test_the_culler_knows_the_groups_of_every_user(crowded_hub, tmp_path):
    """The idle-shutdown pass reads group limits for each user from the same lists."""
    hub, token = crowded_hub
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.sqlite'}")
    upgrade(engine)
    from mlfactory.hub.platform_config import parse_platform_config

    cfg = parse_platform_config(example_config(), "test.yaml")
    url = f"{hub.url}/hub/api"
    culler = Culler(engine, cfg, hub=HubAPI(url, token), hub_url=url, token=token)
    result = await culler.run_pass()
    engine.dispose()
    assert result["ok"] is True, result
    assert all(LAST_GROUP in culler.groups.get(u, []) for u in USERS)
