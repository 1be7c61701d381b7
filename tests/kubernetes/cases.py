"""The Kubernetes platform config the tests and benchmarks use, and every request it allows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlfactory.hub.platform_config import PlatformConfig, load_platform_config
from mlfactory.spawner.profiles import (
    HostCapabilities,
    ResourceRequest,
    resolve_request,
    user_access,
)

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_FILE = ROOT / "deploy" / "helm" / "mlfactory-platform.yaml"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def kube_platform() -> PlatformConfig:
    return load_platform_config(PLATFORM_FILE)


def cluster_caps(config: PlatformConfig) -> HostCapabilities:
    """What the spawner offers on Kubernetes (``MLFactoryKubeSpawner._capabilities``)."""
    kube = config.kubernetes
    assert kube is not None
    return HostCapabilities(gpu_count=8, gpu_types=frozenset(g.name for g in kube.gpu_types))


@dataclass(frozen=True)
class Row:
    profile: str
    gpu: int
    disk: int
    image: str
    request: ResourceRequest

    @property
    def id(self) -> str:
        return f"{self.profile}-gpu{self.gpu}-{self.disk >> 30}Gi-{self.image}"


def _numbers(fixed: float, rng: Any) -> list[float]:
    if rng is None:
        return [fixed]
    values, v = [], rng.min
    while v <= rng.max + 1e-9:
        values.append(v)
        v += rng.step
    return values


def rows(config: PlatformConfig) -> Iterator[Row]:
    """One row per profile × GPU count × image an admin may pick (the disk is the profile's:
    it is not adjustable), resolved as the spawner resolves them."""
    access = user_access(config, [], is_admin=True)  # admins get every profile
    caps = cluster_caps(config)
    for p in config.profiles:
        gpu_range = p.adjustable.gpu if p.adjustable else None
        images = p.images or tuple(i.slug for i in config.images)
        for gpu in _numbers(p.gpu, gpu_range):
            for image in images:
                options: dict[str, Any] = {"profile": p.slug, "image": image}
                if gpu_range is not None:
                    options["gpu"] = int(gpu)
                request = resolve_request(config, access, options, caps)
                yield Row(p.slug, int(gpu), request.disk, image, request)
