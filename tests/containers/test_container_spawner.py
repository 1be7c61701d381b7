"""The container backend through a real JupyterHub, proxy, Podman service and registry:
limits and user seen from inside the container, the home volume kept across a stop, and
the faults a user must be told about (engine down, image missing, wrong mlfactory)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest
import yaml
from mlfactory.spawner.container_labels import instance_id
from mlfactory.spawner.container_spec import container_name, home_volume_name
from mlfactory.spawner.journal import Journal

from tests.e2e.conftest import discard_hub, example_config, prepare_hub, start_hub
from tests.e2e.helpers import HubClient, poll
from tests.engine_fixture import discard_containers

pytestmark = [pytest.mark.hub]
GiB = 1024**3


def platform_config(engine_url: str, registry: str, image: str) -> dict:
    """The shipped example, its catalog one image: the minimal one from this checkout."""
    config = example_config()
    config["images"] = [
        {"slug": "minimal", "display_name": "Minimal", "image": image, "default": True}
    ]
    for entry in config.get("profiles", []) + config.get("groups", []):
        if "images" in entry:
            entry["images"] = ["minimal"]
    config["containers"] = {"engine": engine_url, "registry": {"url": registry}}
    return config


def hub_args(*extra: str) -> list[str]:
    # containers reach the hub on the bridge's gateway; the proxy keeps using loopback
    return [
        "--JupyterHub.spawner_class=mlfactory-docker",
        "--JupyterHub.hub_ip=0.0.0.0",
        "--JupyterHub.hub_connect_ip=127.0.0.1",
        *extra,
    ]


def new_user(admin: HubClient) -> str:
    name = f"ct-{uuid.uuid4().hex[:8]}"
    r = admin.post(f"/hub/api/users/{name}")
    assert r.status_code == 201, r.text
    return name


@pytest.fixture(scope="module")
def container_hub(container_engine, minimal_image) -> Iterator[tuple]:
    config = platform_config(container_engine.url, container_engine.registry, minimal_image)
    data, config_path = prepare_hub("containers", config)
    hub = start_hub(data, *hub_args(), config=config_path)
    users: list[str] = []
    try:
        yield hub, config_path, users
    finally:
        discard_containers(container_engine, data)  # first: it unmounts the volumes
        discard_hub(hub, config_path)


def progress_failure(admin: HubClient, user: str) -> dict:
    import json

    events = []
    with admin.get(f"{admin.server_path('', user)}/progress", stream=True, timeout=120) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                events.append(json.loads(line.split(":", 1)[1]))
    return events[-1]


def charged(admin: HubClient, user: str) -> list[dict]:
    """The user's servers that cost something (other tests' users share the hub)."""
    rows = admin.service_json("/usage?by=server")["rows"]
    return [row for row in rows if row["key"].startswith(f"{user}/") and row["cost"] > 0]


def spawn_failure(admin: HubClient, user: str, body: dict | None = None) -> str:
    """The message a failed spawn gives: on the request itself or on its progress stream."""
    r = admin.start("", body or {"profile": "cpu-small"}, user)
    if r.status_code >= 400:
        return r.json()["message"]
    assert r.status_code == 202, r.text
    failed = progress_failure(admin, user)
    assert failed.get("failed") is True, failed
    return failed["message"]


def run_in(client: docker.APIClient, container: str, *cmd: str) -> str:
    exec_id = client.exec_create(container, list(cmd))["Id"]
    out = client.exec_start(exec_id).decode()
    assert client.exec_inspect(exec_id)["ExitCode"] == 0, out
    return out.strip()


def test_container_spawn_limits_volume_and_restart(container_hub, container_engine):
    hub, _, users = container_hub
    admin = HubClient(hub)
    user = new_user(admin)
    users.append(user)
    admin.spawn("", "cpu-small", user)
    model = admin.wait_ready("", 120, user)
    instance = instance_id(hub.data)
    assert model["state"]["object_name"] == container_name(user, instance=instance)

    client = docker.APIClient(base_url=container_engine.url, version="auto")
    try:
        name = container_name(user, instance=instance)
        info = client.inspect_container(name)
        labels = info["Config"]["Labels"]
        assert labels["org.mlfactory.user"] == user
        assert labels["org.mlfactory.profile"] == "cpu-small"
        assert labels["org.mlfactory.ledger-key"] == model["state"]["mlfactory"]["ledger"]["key"]
        assert "@sha256:" in info["Config"]["Image"] or "@sha256:" in info["ImageName"]
        journal = Journal(hub.data / "runtime" / "servers")
        record = journal.read(labels["org.mlfactory.ledger-key"])
        assert record is not None and (record.container, record.pid) == (info["Id"], 0)
        assert record.ready is True
        assert run_in(client, name, "whoami") == "jovyan"
        limit = int(run_in(client, name, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        assert limit == 2 * GiB
        quota = int(run_in(client, name, "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))
        period = int(run_in(client, name, "cat", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
        assert quota / period == 1.0
        # the server answers through the hub's proxy
        assert admin.get(f"/user/{user}/api/status").status_code == 200
        run_in(client, name, "sh", "-c", "echo kept > /home/jovyan/notes.txt")

        admin.stop("", 60, user)
        with pytest.raises(docker.errors.NotFound):
            client.inspect_container(name)
        volume = home_volume_name(user, instance)
        assert client.inspect_volume(volume)["Name"] == volume

        admin.spawn("", "cpu-small", user)
        admin.wait_ready("", 120, user)
        assert run_in(client, name, "cat", "/home/jovyan/notes.txt") == "kept"
        admin.stop("", 60, user)
    finally:
        client.close()


def test_missing_image_says_why_and_bills_nothing(container_hub, container_engine):
    hub, config_path, users = container_hub
    admin = HubClient(hub)
    user = new_user(admin)
    users.append(user)
    good = config_path.read_text()
    config = yaml.safe_load(good)
    missing = f"{container_engine.registry_location}/mlfactory/minimal:no-such-tag"
    config["images"][0]["image"] = missing
    config_path.write_text(yaml.safe_dump(config))
    try:
        message = spawn_failure(admin, user)
    finally:
        config_path.write_text(good)
    assert "mlfactory/minimal:no-such-tag is not in the registry" in message, message
    assert charged(admin, user) == []


def test_an_image_outside_the_catalog_is_refused_and_starts_nothing(
    container_hub, container_engine
):
    """DockerSpawner ran any image a user named when no list was set (CVE-2023-48311)."""
    hub, _, users = container_hub
    admin = HubClient(hub)
    user = new_user(admin)
    users.append(user)
    for image in ("evil.example.org/miner:latest", f"{container_engine.registry_location}/x:1"):
        r = admin.start("", {"profile": "cpu-small", "image": image}, user)
        assert r.status_code == 400, r.text
        assert f"'{image}' is not in the image catalog" in r.json()["message"]
    assert "" not in admin.servers(user)  # nothing started
    client = docker.APIClient(base_url=container_engine.url, version="auto")
    try:
        assert client.containers(all=True, filters={"label": f"org.mlfactory.user={user}"}) == []
    finally:
        client.close()
    assert charged(admin, user) == []


@pytest.fixture(scope="module")
def mismatch_hub(container_engine, minimal_image) -> Iterator[tuple]:
    """A hub that tells its servers it runs mlfactory 9.9.9."""
    config = platform_config(container_engine.url, container_engine.registry, minimal_image)
    data, config_path = prepare_hub("containers-faults", config)
    hub = start_hub(
        data,
        *hub_args("--MLFactoryDockerSpawner.environment={'MLFACTORY_HUB_VERSION': '9.9.9'}"),
        config=config_path,
    )
    users: list[str] = []
    try:
        yield hub, config_path, users
    finally:
        discard_containers(container_engine, data)  # first: it unmounts the volumes
        discard_hub(hub, config_path)


def test_version_mismatch_names_both_versions(mismatch_hub, container_engine):
    import importlib.metadata

    hub, _, users = mismatch_hub
    admin = HubClient(hub)
    user = new_user(admin)
    users.append(user)
    message = spawn_failure(admin, user)
    own = importlib.metadata.version("mlfactory")
    assert "Your server stopped during start-up (exit code 1)" in message, message
    assert f"This image has mlfactory {own} but the hub runs 9.9.9" in message, message
    assert "mlfactory images build" in message
    # the failed container is gone; nothing was billed
    client = docker.APIClient(base_url=container_engine.url, version="auto")
    try:
        poll(
            lambda: (
                not client.containers(
                    all=True, filters={"name": container_name(user, instance=instance_id(hub.data))}
                )
            ),
            30,
            "the failed container removed",
        )
    finally:
        client.close()
    assert charged(admin, user) == []


def test_engine_down_names_the_url_and_bills_nothing(mismatch_hub, tmp_path):
    hub, config_path, users = mismatch_hub
    admin = HubClient(hub)
    user = new_user(admin)
    users.append(user)
    dead = f"unix://{tmp_path}/no-engine.sock"
    good = config_path.read_text()
    config = yaml.safe_load(good)
    config["containers"]["engine"] = dead
    config_path.write_text(yaml.safe_dump(config))
    try:
        message = spawn_failure(admin, user)
    finally:
        config_path.write_text(good)
    assert f"the container engine at {dead} cannot be reached" in message, message
    assert charged(admin, user) == []
