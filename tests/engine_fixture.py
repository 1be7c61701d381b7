"""Fixtures for the container backend: a real Podman API service, a real registry, and the
minimal workspace image built from this checkout and pushed there.

The daemons are shared by every test session on the machine (a fixed socket and port under
``ENGINE_ROOT``) and left running: starting Podman's service and the registry costs seconds,
and the image cache in Podman's storage is what keeps a second run from rebuilding. Where
Podman cannot run, the tests that ask for it fail in CI (``CI`` set, or
``MLFACTORY_REQUIRE_ENGINE=1``) and are skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlfactory.spawner.engine import LocalEngine

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


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def base_image(container_engine: Engine) -> str:
    """The Debian base layer (mmdebstrap), imported once per package list."""
    packages = ROOT / "images" / "base" / "packages.txt"
    tag = f"mlfactory/base:bookworm-{_digest(packages)}"
    if container_engine.podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    names = [ln.strip() for ln in packages.read_text().splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    tar = ENGINE_ROOT / "base.tar"
    subprocess.run(
        ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(names)}"]
        + ["bookworm", str(tar)],
        check=True,
    )
    container_engine.podman("import", "--quiet", str(tar), tag)
    tar.unlink()
    return tag


@pytest.fixture(scope="session")
def minimal_image(container_engine: Engine, base_image: str, tmp_path_factory) -> str:
    """The minimal image built from this checkout (Podman's layer cache makes a rebuild
    take seconds), pushed to the test registry; returns its registry reference."""
    context = tmp_path_factory.mktemp("image-context")
    (context / "images" / "minimal").mkdir(parents=True)
    for name in ("Dockerfile", "requirements.txt"):
        shutil.copy(ROOT / "images" / "minimal" / name, context / "images" / "minimal" / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(context / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    ref = f"{container_engine.registry_location}/mlfactory/minimal:test"
    build = ["build", "-q", "--network", "host", "--build-arg", f"BASE={base_image}"]
    if Path("/etc/ssl/certs/ca-certificates.crt").exists():
        build += ["--secret", "id=ca,src=/etc/ssl/certs/ca-certificates.crt"]
    container_engine.podman(
        *build, "-f", str(context / "images/minimal/Dockerfile"), "-t", ref, str(context)
    )
    container_engine.podman("push", "-q", "--tls-verify=false", ref)
    return ref
