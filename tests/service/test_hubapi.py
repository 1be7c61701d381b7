"""The service's hub client: it reads every page of the hub's lists, and the ledger keys it
makes for servers the spawner gave none never collide."""

from __future__ import annotations

import json

from mlfactory.service.hubapi import HubAPI, hub_key, sighting
from tornado.httpclient import AsyncHTTPClient

from .helpers import T0
from .test_culling import iso


async def test_the_stand_in_hub_pages_only_when_asked_like_jupyterhub(fake_hub, hub_state):
    for i in range(450):
        hub_state.add_user(f"user{i:03d}", groups=(f"team{i:03d}",))
    client = AsyncHTTPClient()
    auth = {"Authorization": "token service-token"}  # the hub answers its lists to tokens only
    plain = json.loads((await client.fetch(f"{fake_hub}/users?limit=1000", headers=auth)).body)
    assert isinstance(plain, list) and len(plain) == 200  # cut at the max limit, silently
    paged = json.loads(
        (
            await client.fetch(
                f"{fake_hub}/users",
                headers={**auth, "Accept": "application/jupyterhub-pagination+json"},
            )
        ).body
    )
    assert len(paged["items"]) == 50 and paged["_pagination"]["next"]["offset"] == 50

    api = HubAPI(fake_hub, "service-token")
    assert len({u["name"] async for u in api.users()}) == 450
    assert len({g["name"] for g in await api.groups()}) == 450


def test_long_names_get_distinct_ledger_keys():
    started = iso(T0)

    def key(user: str, server_name: str) -> str:
        server = {"ready": True, "started": started, "state": {}}
        s = sighting({"name": user, "groups": []}, server_name, server)
        assert s is not None and len(s.key) <= 80
        return s.key

    user = "a" * 76  # its servers' keys differed only after the 80th character
    keys = {key(user, name) for name in ("lab", "train", "")}
    assert len(keys) == 3
    assert key("b" * 100 + "x", "") != key("b" * 100 + "y", "")
    # the same server keeps its key from one reconcile to the next
    assert key(user, "lab") == key(user, "lab")
    # short names keep the readable key that rows already open carry
    assert key("ann", "lab") == f"hub-ann-lab-{int(T0)}"
    assert hub_key("ann", "lab", int(T0)) == f"hub-ann-lab-{int(T0)}"
