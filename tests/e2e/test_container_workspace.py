"""Container workspaces through a real hub, a real Podman engine and a real registry: in
Chromium a user picks a profile and an image and JupyterLab opens in the container, which
runs under the limits picked, as a non-root user, with a home volume whose size is
enforced; stopping removes the container and keeps the volume; a hub restart keeps the
server running."""

from __future__ import annotations

import re

import docker
import pytest

from tests.engine_fixture import discard_containers

from .conftest import (
    ADMIN_PASSWORD,
    discard_hub,
    free_port,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
    stop_hub,
)
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub, pytest.mark.browser]

USER_LABEL = "org.mlfactory.user"


def container_config(engine, image_ref: str) -> dict:
    """The shipped example on the container backend, with one image (the minimal image
    built from this checkout) and a small profile whose 128 MiB disk a test can fill."""
    from .conftest import example_config

    config = example_config()
    repository = image_ref.split("/", 1)[1]  # without the registry's host:port
    config["platform"]["backend"] = "container"
    config["containers"] = {"engine": engine.url, "registry": {"url": engine.registry}}
    config["images"] = [
        {"slug": "minimal", "display_name": "Minimal", "image": repository, "default": True}
    ]
    for item in (*config["profiles"], *config["groups"]):
        if "images" in item:
            item["images"] = ["minimal"]
    config["profiles"].insert(
        0,
        {
            "slug": "tiny",
            "display_name": "Tiny",
            "description": "1 core, 1 GiB, 128 MiB disk",
            "cpu": 1,
            "memory": "1Gi",
            "disk": "128Mi",
            "price_per_hour": 0.01,
        },
    )
    return config


def containers_of(client: docker.DockerClient, user: str) -> list:
    return client.containers.list(all=True, filters={"label": f"{USER_LABEL}={user}"})


def run(container, command: str) -> tuple[int, str]:
    result = container.exec_run(["sh", "-c", command])
    return result.exit_code, result.output.decode(errors="replace").strip()


@pytest.fixture
def engine_client(container_engine):
    client = docker.DockerClient(base_url=container_engine.url, version="auto")
    yield client
    client.close()


def test_a_user_works_in_a_container_from_the_registry(
    container_engine, minimal_image, engine_client, page
):
    config = container_config(container_engine, minimal_image)
    data, config_path = prepare_hub("containers", config)
    # the servers that survive a hub restart keep calling the hub's API: a fixed port (the
    # container backend has the hub listen beyond loopback, where containers reach it)
    hub_port = free_port()
    hub = start_hub(data, config=config_path, hub_port=hub_port)
    admin = HubClient(hub)
    try:
        log_in(page, hub, "admin", ADMIN_PASSWORD)
        page.goto(f"{hub.url}/hub/spawn")
        page.locator('[data-testid="mlfactory-picker"]').wait_for()
        page.locator('[data-testid="profile-card-tiny"]').click()
        # the registry's tags of the image are offered: pick the version tag, not the
        # catalog's digest tag (both pushed by the image build)
        tags = page.locator('select[name="tag--tiny--minimal"]')
        offered = tags.locator("option").evaluate_all("(os) => os.map((o) => o.textContent)")
        assert any(t.strip() == "0.1.0" for t in offered), offered
        tags.select_option("0.1.0")
        picker_text = page.locator('[data-testid="mlfactory-picker"]').inner_text()
        assert "Disk size is advisory" not in picker_text  # the volume's size is enforced
        screenshot(page, "container-picker")
        page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
        page.wait_for_url(re.compile(r".*/user/admin/lab.*"), timeout=120_000)
        page.locator("#jp-main-dock-panel").wait_for(timeout=60_000)
        screenshot(page, "container-lab")

        # the panels' server extension runs in the image and reaches the platform service
        # (the status bar's budget, the idle-shutdown status) from inside the container
        for path in ("api/info", "api/budget", "api/culling"):
            r = page.request.get(f"{hub.url}/user/admin/mlfactory/{path}")
            assert r.status == 200, (path, r.text())
        assert (
            page.request.get(f"{hub.url}/user/admin/mlfactory/api/info").json()["profile"]["slug"]
            == "tiny"
        )

        (container,) = containers_of(engine_client, "admin")
        assert container.status == "running"
        assert container.labels["org.mlfactory.profile"] == "tiny"
        assert container.labels["org.mlfactory.image"] == "minimal:0.1.0"
        assert "@sha256:" in container.attrs["Config"]["Image"]  # pulled by digest
        assert run(container, "whoami") == (0, "jovyan")
        # the image's own Python, not the hub's
        assert run(container, "command -v python")[1] == "/opt/mlfactory/bin/python"
        # cgroup v1 on these hosts (v2 elsewhere): the memory and CPU limits of the profile
        code, memory = run(
            container,
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
            " || cat /sys/fs/cgroup/memory.max",
        )
        assert code == 0 and int(memory) == 2**30
        code, cpu = run(
            container,
            "cd /sys/fs/cgroup/cpu 2>/dev/null && echo $(cat cpu.cfs_quota_us cpu.cfs_period_us)"
            " || cat /sys/fs/cgroup/cpu.max",
        )
        quota, period = (int(x) for x in cpu.split())
        assert code == 0 and quota / period == pytest.approx(1.0)

        # the home volume is 128 MiB: a write past it fails with "No space left on device"
        assert run(container, "echo kept > ~/notes.txt")[0] == 0
        code, out = run(container, "dd if=/dev/zero of=$HOME/big bs=1M count=200")
        assert code != 0 and "No space left on device" in out
        run(container, "rm -f $HOME/big")

        # a hub restart keeps the server (and its container) running
        stop_hub(hub)
        container.reload()
        assert container.status == "running"
        hub = admin.hub = start_hub(data, config=config_path, hub_port=hub_port)
        admin.wait_ready("", 120)
        assert poll(
            lambda: admin.get("/user/admin/api/status").status_code == 200, 60, "the server"
        )
        assert [c.id for c in containers_of(engine_client, "admin")] == [container.id]

        # stopping removes the container and keeps the volume: the next start sees the file
        volumes = {m["Name"] for m in container.attrs["Mounts"] if m.get("Name")}
        assert volumes, "the home folder is not a named volume"
        admin.stop()
        assert poll(lambda: not containers_of(engine_client, "admin"), 60, "removal")
        assert {v.name for v in engine_client.volumes.list()} >= volumes
        r = admin.start(body={"profile": "tiny"})
        assert r.status_code in (201, 202), r.text
        admin.wait_ready("", 120)
        (container,) = containers_of(engine_client, "admin")
        assert run(container, "cat ~/notes.txt") == (0, "kept")
    except BaseException:
        print(hub.log()[-6000:])  # shown with the failure: the hub's and the spawner's word
        raise
    finally:
        discard_containers(container_engine, data)  # first: it unmounts the volumes
        discard_hub(hub, config_path)
