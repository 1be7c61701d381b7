"""Shared configs and helpers for the profile resolver tests (test_profiles*.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlfactory.hub import platform_config as pc
from mlfactory.hub.platform_config import (
    PlatformConfig,
    load_platform_config,
    parse_platform_config,
)
from mlfactory.spawner.profiles import (
    HostCapabilities,
    RequestError,
    UserAccess,
    resolve_request,
    user_access,
)

GIB = 2**30
EXAMPLE = load_platform_config(Path(pc.__file__).with_name("mlfactory.yaml"))

NO_GPU = HostCapabilities()
T4X2 = HostCapabilities(gpu_count=2, gpu_types=frozenset({"Tesla T4"}))
T4X4 = HostCapabilities(gpu_count=4, gpu_types=frozenset({"nvidia-tesla-t4"}))
A100X8 = HostCapabilities(gpu_count=8, gpu_types=frozenset({"NVIDIA A100"}))
ANY8 = HostCapabilities(gpu_count=8)  # types unknown

SMALL_DATA: dict[str, Any] = {
    "profiles": [
        {
            "slug": "small",
            "display_name": "Small",
            "cpu": 1,
            "memory": "2Gi",
            "price_per_hour": 0.05,
            "default": True,
        },
        {
            "slug": "big",
            "display_name": "Big",
            "cpu": 4,
            "cpu_guarantee": 2,
            "memory": "16Gi",
            "memory_guarantee": "8Gi",
            "adjustable": {
                "cpu": {"min": 2, "max": 16, "step": 2},
                "memory": {"min": "8Gi", "max": "64Gi", "step": "8Gi"},
            },
        },
        {
            "slug": "half",
            "display_name": "Half",
            "cpu": 0.5,
            "memory": "1Gi",
            "adjustable": {"cpu": {"min": 0.5, "max": 2, "step": 0.5}},
        },
        {
            "slug": "gpu",
            "display_name": "GPU",
            "cpu": 8,
            "memory": "32Gi",
            "gpu": 1,
            "gpu_type": "nvidia-a100",
            "images": ["torch"],
            "node_pool": "a100",
            "adjustable": {"gpu": {"min": 1, "max": 8}},
        },
    ],
    "images": [
        {"slug": "base", "display_name": "Base", "image": "org/base:1", "default": True},
        {"slug": "torch", "display_name": "Torch", "image": "org/torch:1"},
        {"slug": "r", "display_name": "R", "image": "org/r:1"},
    ],
    "groups": [
        {
            "name": "analysts",
            "profiles": ["small", "big", "half"],
            "images": ["base", "r"],
            "default_profile": "big",
            "ranges": {"big": {"cpu": {"min": 2, "max": 8, "step": 2}}},
        },
        {
            "name": "research",
            "profiles": ["small", "big", "gpu"],
            "default_profile": "gpu",
            "priority": 5,
            "ranges": {"big": {"memory": {"min": "8Gi", "max": "32Gi", "step": "8Gi"}}},
        },
        {"name": "interns", "profiles": ["small"], "images": ["base"]},
        {"name": "gpu-only", "profiles": ["gpu"], "images": ["torch"]},
    ],
    "projects": [
        {"name": "open", "display_name": "Open"},
        {"name": "secret", "display_name": "Secret", "groups": ["research"]},
    ],
    "pricing": {
        "cpu_hour": 0.04,
        "memory_gib_hour": 0.005,
        "gpu_hour": 1.0,
        "gpu_type_hour": {"nvidia-a100": 2.5},
    },
    "default_budget": {"amount": 100},
}


def small(change: Callable[[dict], Any] | None = None) -> PlatformConfig:
    """The small inline config, optionally edited first."""
    data = copy.deepcopy(SMALL_DATA)
    if change:
        change(data)
    return parse_platform_config(data, "small.yaml")


SMALL = small()
DS = ["data-science"]
ML = ["ml-engineering"]
CONFIGS = {"example": EXAMPLE, "small": SMALL}


def who(config: PlatformConfig, *groups: str, admin: bool = False) -> UserAccess:
    return user_access(config, groups, admin)


def slugs(choices) -> list[str]:
    return [c.profile.slug for c in choices]


def resolve_error(config, access, options, host=NO_GPU) -> RequestError:
    with pytest.raises(RequestError) as info:
        resolve_request(config, access, options, host)
    return info.value


def rng(lo, hi, step=1.0) -> dict:
    return {"min": lo, "max": hi, "step": step}
