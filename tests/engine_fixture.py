"""Fixtures for the container backend: a real Podman API service, a real registry, and the
minimal workspace image built from this checkout and pushed there.

The daemons are shared by every test session on the machine (a fixed socket and port under
``ENGINE_ROOT``) and left running: starting Podman's service and the registry costs seconds,
and the image cache in Podman's storage is what keeps a second run from rebuilding. Where
Podman cannot run, the tests that ask for it fail in CI (``CI`` set, or
``MLFACTORY_REQUIRE_ENGINE=1``) and are skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlfactory.spawner.engine import LocalEngine
from mlfactory.spawner.image_build import ImageBuilder

ROOT = Path(__file__).resolve().parents[1]
ENGINE_ROOT = Path(os.environ.get("MLFACTORY_TEST_ENGINE", "/var/tmp/mlfactory-test-engine"))
SOCKET = str(ENGINE_ROOT / "podman.sock")
REGISTRY = "127.0.0.1:5056"


def engine_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("MLFACTORY_REQUIRE_ENGINE") == "1"


def unavailable(reason: str) -> None:
    if engine_required():
        pytest.fail(f"A container engine is required (CI / MLFACTORY_REQUIRE_ENGINE): {reason}")
    pytest.skip(f"No container engine: {reason}")


@dataclass(frozen=True)
class Engine:
    url: str  # the Docker Engine API (Podman's service)
    registry: str  # http://host:port
    local: LocalEngine

    @property
    def registry_location(self) -> str:
        return self.registry.removeprefix("http://")

    def podman(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run the podman CLI with the service's settings (runc, cgroupfs, ulimits)."""
        return subprocess.run(
            ["podman", *args],
            env=self.local.podman_env([self.registry_location]),
            check=check,
            capture_output=True,
            text=True,
            **kwargs,
        )


@pytest.fixture(scope="session")
def container_engine() -> Engine:
    if os.geteuid() != 0:
        unavailable("the container tests run Podman as root")
    for tool in ("podman", "runc", "docker-registry", "mmdebstrap"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (make engine)")
    local = LocalEngine(ENGINE_ROOT)
    try:
        registry = local.start_registry(REGISTRY)
        url = local.start_podman(SOCKET, registries=[REGISTRY])
    except RuntimeError as e:
        unavailable(str(e))
    return Engine(url=url, registry=registry, local=local)


def _builder(engine: Engine) -> ImageBuilder:
    return ImageBuilder(
        ROOT,
        env=engine.local.podman_env([engine.registry_location]),
        registry=engine.registry,
        work=ENGINE_ROOT,
    )


@pytest.fixture(scope="session")
def image_builder(container_engine: Engine):
    """The images' build pipeline (spawner_ext/image_build.py) on the test engine and
    registry: the same code `make images` runs."""
    builder = _builder(container_engine)
    yield builder
    builder.close()


@pytest.fixture(scope="session")
def base_image(image_builder: ImageBuilder) -> str:
    """The Debian base layer (mmdebstrap), imported once per package list; its local tag."""
    return image_builder.ensure_base().tags[-1]


@pytest.fixture(scope="session")
def minimal_image(image_builder: ImageBuilder, base_image: str) -> str:
    """The minimal image built from this checkout and pushed to the test registry; returns
    its registry reference (``127.0.0.1:5056/mlfactory/minimal:<version>-<digest>``). The
    digest tag is over the build inputs, so an unchanged checkout builds nothing."""
    return image_builder.build("minimal", push=True).reference


def discard_containers(engine: Engine, data: Path) -> None:
    """Remove what a hub on ``data`` made on the engine (its containers and home volumes,
    found by its instance label) and unmount its volumes; the test registry is kept."""
    import docker
    from mlfactory.spawner.container_labels import INSTANCE, instance_id
    from mlfactory.spawner.volumes import HomeVolume, unmount

    label = {"label": f"{INSTANCE}={instance_id(data)}"}
    client = docker.APIClient(base_url=engine.url, version="auto")
    try:
        for container in client.containers(all=True, filters=label):
            client.remove_container(container["Id"], force=True)
        for volume in client.volumes(filters=label).get("Volumes") or []:
            client.remove_volume(volume["Name"], force=True)
    finally:
        client.close()
    root = data / "volumes"
    for image in root.glob("*.ext4") if root.is_dir() else ():
        unmount(HomeVolume(root, image.stem))
