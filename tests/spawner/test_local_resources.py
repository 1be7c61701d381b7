"""Resources through a hub (MockHub, real servers): named servers with their own
profiles, GPUs handed out without sharing, and a saved choice that is no longer allowed."""

from __future__ import annotations

import json
import stat

import pytest
from jupyterhub.tests.utils import add_user, api_request
from mlfactory.spawner.host import LocalHost
from mlfactory.spawner.local import MLFactoryLocalSpawner

FAKE_NVIDIA_SMI = """#!/bin/sh
# Two T4s, as `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,...` lists them
echo "0, GPU-aaaa-0000, Tesla T4, 15360"
echo "1, GPU-bbbb-1111, Tesla T4, 15360"
"""


@pytest.fixture
def two_gpu_host(tmp_path):
    """This host, as the spawner sees it, with two T4 GPUs (a stand-in nvidia-smi)."""
    script = tmp_path / "nvidia-smi"
    script.write_text(FAKE_NVIDIA_SMI)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    LocalHost.forget()
    yield str(script)
    LocalHost.forget()


@pytest.fixture
def config(tmp_path, mockhub_config, two_gpu_host):
    return {
        **mockhub_config,
        "JupyterHub": {
            **mockhub_config["JupyterHub"],
            "spawner_class": MLFactoryLocalSpawner,
            "allow_named_servers": True,
        },
        "MLFactoryLocalSpawner": {
            "user_accounts": "none",
            "workspace_root": str(tmp_path / "workspaces"),
            "log_root": str(tmp_path / "logs"),
            "nvidia_smi": two_gpu_host,
        },
        "Spawner": {"start_timeout": 60, "http_timeout": 60},
    }


async def _start(app, user, server, options):
    return await api_request(
        app, "users", user, "servers", server, method="post", data=json.dumps(options)
    )


async def test_named_servers_get_their_own_profile_and_distinct_gpus(hub_app, config):
    app = await hub_app(config)
    user = add_user(app.db, app, name="gina", admin=True)  # admins may use every profile
    gpu = {"profile": "gpu-t4", "gpu": 1, "image": "pytorch"}
    try:
        assert (await _start(app, "gina", "small", {"profile": "cpu-small"})).status_code == 201
        assert (await _start(app, "gina", "gpu-a", gpu)).status_code == 201
        assert (await _start(app, "gina", "gpu-b", gpu)).status_code == 201
        spawners = user.spawners
        assert spawners["small"].resource_request.profile == "cpu-small"
        assert spawners["small"].get_env()["CUDA_VISIBLE_DEVICES"] == ""
        devices = {spawners[s].get_env()["CUDA_VISIBLE_DEVICES"] for s in ("gpu-a", "gpu-b")}
        assert devices == {"GPU-aaaa-0000", "GPU-bbbb-1111"}  # never the same GPU twice

        r = await _start(app, "gina", "gpu-c", gpu)
        assert r.status_code == 503
        assert "in use" in r.json()["message"]

        # stopping a server gives its GPU back
        await user.stop("gpu-a")
        assert (await _start(app, "gina", "gpu-c", gpu)).status_code == 201
        assert spawners["gpu-c"].get_env()["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa-0000"
    finally:
        for name in list(user.spawners):
            if user.spawners[name].active:
                await user.stop(name)


async def test_after_a_hub_restart_a_running_server_keeps_its_gpu(hub_app, config):
    app = await hub_app(config)
    user = add_user(app.db, app, name="lena", admin=True)
    gpu = {"profile": "gpu-t4", "gpu": 1, "image": "pytorch"}
    try:
        assert (await _start(app, "lena", "a", gpu)).status_code == 201
        spawner = user.spawners["a"]
        held = spawner.get_env()["CUDA_VISIBLE_DEVICES"]
        # A new hub process: the host is detected afresh and the spawner comes back from
        # its saved state; its first poll finds the server running.
        LocalHost.forget()
        spawner.load_state(spawner.get_state())
        assert await spawner.poll() is None

        assert (await _start(app, "lena", "b", gpu)).status_code == 201
        assert user.spawners["b"].get_env()["CUDA_VISIBLE_DEVICES"] not in ("", held)
        r = await _start(app, "lena", "c", gpu)
        assert r.status_code == 503, r.text  # both GPUs taken: a's was restored
        await user.stop("a")  # and its stop gives it back
        assert (await _start(app, "lena", "c", gpu)).status_code == 201
        assert user.spawners["c"].get_env()["CUDA_VISIBLE_DEVICES"] == held
    finally:
        for name in list(user.spawners):
            if user.spawners[name].active:
                await user.stop(name)


async def test_saved_choice_no_longer_allowed_falls_back_to_default(hub_app, config):
    app = await hub_app(config)
    user = add_user(app.db, app, name="hank")  # no group: the default group (data-science)
    spawner = user.spawners[""]
    spawner.orm_spawner.user_options = {"profile": "gpu-t4", "gpu": 1}  # saved, now refused
    app.db.commit()
    try:
        r = await api_request(app, "users", "hank", "server", method="post")  # no options
        assert r.status_code == 201, r.text
        assert spawner.resource_request.profile == "cpu-small"
        messages = [e["message"] for e in spawner._events]
        assert any("no longer available" in m for m in messages)
    finally:
        await user.stop()


async def test_explicit_options_out_of_policy_get_400_naming_the_field(hub_app, config):
    app = await hub_app(config)
    add_user(app.db, app, name="ivy")
    cases = [
        ({"profile": "gpu-t4"}, "profile"),  # not offered to her group
        ({"profile": "cpu-large", "cpu": 6}, "cpu"),  # her group's range stops at 4
        ({"profile": "cpu-small", "image": "pytorch"}, "image"),
        ({"profile": "cpu-small", "project": "vision-research"}, "project"),
        ({"profile": "cpu-small", "shell": "/bin/zsh"}, "shell"),
    ]
    for options, field in cases:
        r = await api_request(
            app, "users", "ivy", "server", method="post", data=json.dumps(options)
        )
        assert r.status_code == 400, (options, r.text)
        assert field in r.json()["message"], r.json()
    assert (await api_request(app, "users", "ivy")).json()["servers"] == {}


async def _post_server(app, user, body: str):
    return await api_request(app, "users", user, "server", method="post", data=body)


async def test_a_refused_request_does_not_become_the_saved_choice(hub_app, config):
    app = await hub_app(config)
    user = add_user(app.db, app, name="jill")  # the default group: cpu-small by default
    spawner = user.spawners[""]
    bad = json.dumps({"user_options": {"profile": "no-such-profile-xyz"}})
    try:
        r = await _post_server(app, "jill", bad)
        assert r.status_code == 400 and "profile" in r.json()["message"], r.text
        assert user.spawners[""].orm_spawner.user_options == {}  # nothing saved
        # a request without options: the default profile, not the refused one
        r = await _post_server(app, "jill", "{}")
        assert r.status_code == 201, r.text
        spawner = user.spawners[""]
        assert spawner.resource_request.profile == "cpu-small"
        await user.stop()

        medium = json.dumps({"user_options": {"profile": "cpu-medium"}})
        assert (await _post_server(app, "jill", medium)).status_code == 201
        await user.stop()
        r = await _post_server(app, "jill", bad)
        assert r.status_code == 400, r.text
        assert user.spawners[""].orm_spawner.user_options == {"profile": "cpu-medium"}
        # without options again: the last valid choice
        for body in ("{}", json.dumps({"user_options": None})):
            r = await _post_server(app, "jill", body)
            assert r.status_code == 201, r.text
            spawner = user.spawners[""]
            assert spawner.resource_request.profile == "cpu-medium"
            await user.stop()
    finally:
        if user.spawners[""].active:
            await user.stop()


async def test_a_budget_refusal_does_not_become_the_saved_choice(hub_app, config):
    async def refuse_medium(spawner, request):
        return "Over budget" if request.profile == "cpu-medium" else None

    config["MLFactoryLocalSpawner"]["budget_check"] = refuse_medium
    app = await hub_app(config)
    user = add_user(app.db, app, name="kim")
    medium = json.dumps({"user_options": {"profile": "cpu-medium"}})
    try:
        r = await _post_server(app, "kim", medium)
        assert r.status_code == 403 and r.json()["message"] == "Over budget", r.text
        assert (await _post_server(app, "kim", "{}")).status_code == 201
        assert user.spawners[""].resource_request.profile == "cpu-small"
    finally:
        if user.spawners[""].active:
            await user.stop()
