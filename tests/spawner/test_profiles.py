"""Profiles a user may choose, their images, ranges and availability on a host, and turning
untrusted user options into a checked ResourceRequest (or a RequestError, never anything else).
"""

from __future__ import annotations

import copy
import itertools
import json
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
    OPTION_KEYS,
    HostCapabilities,
    RequestError,
    ResourceRequest,
    UserAccess,
    default_profile_slug,
    profile_choices,
    project_choices,
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
    "default_budget": {"monthly": 100},
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


# --- groups and access -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "groups", "expected"),
    [
        pytest.param("example", ["data-science"], ("data-science",), id="one-group"),
        pytest.param("example", [], ("data-science",), id="none-gets-default-group"),
        pytest.param("example", ["staff", "wheel"], ("data-science",), id="unknown-gets-default"),
        pytest.param(
            "example",
            ["ml-engineering", "staff", "data-science"],
            ("data-science", "ml-engineering"),
            id="known-only-config-order",
        ),
        pytest.param("small", [], (), id="no-default-group"),
    ],
)
def test_user_access(config, groups, expected):
    assert user_access(CONFIGS[config], groups, False) == UserAccess(expected, False)


# --- which profiles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "groups", "admin", "expected"),
    [
        pytest.param(
            "example", [], False, ["cpu-small", "cpu-medium", "cpu-large"], id="default-group"
        ),
        pytest.param(
            "example",
            ["ml-engineering"],
            False,
            ["cpu-small", "cpu-medium", "cpu-large", "gpu-t4"],
            id="gpu-group",
        ),
        pytest.param(
            "example", [], True, ["cpu-small", "cpu-medium", "cpu-large", "gpu-t4"], id="admin"
        ),
        pytest.param("small", ["interns"], False, ["small"], id="one-profile"),
        pytest.param(
            "small", ["interns", "gpu-only"], False, ["small", "gpu"], id="union-config-order"
        ),
        pytest.param("small", [], False, ["small"], id="no-group-no-default-group"),
        pytest.param("small", [], True, ["small", "big", "half", "gpu"], id="admin-no-group"),
    ],
)
def test_allowed_profiles(config, groups, admin, expected):
    cfg = CONFIGS[config]
    assert slugs(profile_choices(cfg, who(cfg, *groups, admin=admin), ANY8)) == expected


def _half_is_config_default(d):
    d["profiles"][0]["default"] = False
    d["profiles"][2]["default"] = True


def test_no_group_user_gets_only_the_config_default():
    cfg = small(_half_is_config_default)
    assert slugs(profile_choices(cfg, who(cfg), ANY8)) == ["half"]


@pytest.mark.parametrize(
    ("config", "groups", "admin", "profile", "expected"),
    [
        pytest.param("small", ["interns"], False, "small", ["base"], id="group-images"),
        pytest.param("small", ["analysts"], False, "big", ["base", "r"], id="group-two-images"),
        pytest.param(
            "small", ["research"], False, "big", ["base", "torch", "r"], id="group-all-images"
        ),
        pytest.param(
            "small",
            ["analysts", "research"],
            False,
            "small",
            ["base", "torch", "r"],
            id="one-group-allows-all",
        ),
        pytest.param(
            "small", ["interns", "analysts"], False, "small", ["base", "r"], id="union-of-images"
        ),
        pytest.param("small", ["research"], False, "gpu", ["torch"], id="profile-images"),
        pytest.param("small", ["interns"], True, "small", ["base", "torch", "r"], id="admin"),
        pytest.param("small", [], True, "gpu", ["torch"], id="admin-profile-images"),
        pytest.param("example", [], False, "cpu-small", ["python-ds"], id="example-default"),
        pytest.param(
            "example",
            ["ml-engineering"],
            False,
            "cpu-small",
            ["python-ds", "pytorch"],
            id="example-ml",
        ),
    ],
)
def test_allowed_images(config, groups, admin, profile, expected):
    cfg = CONFIGS[config]
    choices = profile_choices(cfg, who(cfg, *groups, admin=admin), ANY8)
    choice = next(c for c in choices if c.profile.slug == profile)
    assert [i.slug for i in choice.images] == expected


# --- effective ranges --------------------------------------------------------------------------


def ranges_of(cfg, groups, profile, admin=False) -> dict | None:
    choices = profile_choices(cfg, who(cfg, *groups, admin=admin), ANY8)
    ranges = next(c for c in choices if c.profile.slug == profile).ranges
    return None if ranges is None else ranges.model_dump()


def rng(lo, hi, step=1.0) -> dict:
    return {"min": lo, "max": hi, "step": step}


def gib(lo, hi, step) -> dict:
    return {"min": lo * GIB, "max": hi * GIB, "step": step * GIB}


def _analysts_memory(d):
    d["groups"][0]["ranges"]["big"]["memory"] = {"min": "8Gi", "max": "16Gi", "step": "8Gi"}


def _tie(d):
    _analysts_memory(d)
    d["groups"][1]["priority"] = 0


BIG_AS_IS = {"cpu": rng(2, 16, 2), "memory": gib(8, 64, 8), "gpu": None}


@pytest.mark.parametrize(
    ("change", "groups", "admin", "profile", "expected"),
    [
        pytest.param(
            None,
            ["analysts"],
            False,
            "big",
            BIG_AS_IS | {"cpu": rng(2, 8, 2)},
            id="group-narrows-cpu",
        ),
        pytest.param(
            None,
            ["research"],
            False,
            "big",
            BIG_AS_IS | {"memory": gib(8, 32, 8)},
            id="group-narrows-memory",
        ),
        pytest.param(
            None,
            ["analysts", "research"],
            False,
            "big",
            BIG_AS_IS | {"cpu": rng(2, 8, 2), "memory": gib(8, 32, 8)},
            id="per-field-from-each-group",
        ),
        pytest.param(
            _analysts_memory,
            ["analysts", "research"],
            False,
            "big",
            BIG_AS_IS | {"cpu": rng(2, 8, 2), "memory": gib(8, 32, 8)},
            id="priority-wins",
        ),
        pytest.param(
            _tie,
            ["analysts", "research"],
            False,
            "big",
            BIG_AS_IS | {"cpu": rng(2, 8, 2), "memory": gib(8, 16, 8)},
            id="tie-earlier-in-config-wins",
        ),
        pytest.param(
            lambda d: d["groups"][0]["ranges"]["big"].update(cpu=rng(0, 100, 1)),
            ["analysts"],
            False,
            "big",
            BIG_AS_IS,
            id="wider-group-range-clamped-coarser-step-kept",
        ),
        pytest.param(
            lambda d: d["groups"][0]["ranges"]["big"].update(cpu=rng(4, 6, 4)),
            ["analysts"],
            False,
            "big",
            BIG_AS_IS | {"cpu": rng(4, 6, 4)},
            id="group-coarser-step",
        ),
        pytest.param(
            lambda d: d["groups"][0]["ranges"]["big"].update(cpu=rng(20, 30, 2)),
            ["analysts"],
            False,
            "big",
            BIG_AS_IS | {"cpu": None},
            id="disjoint-fixes-the-value",
        ),
        pytest.param(
            lambda d: d["groups"][0]["ranges"].update(half={"memory": gib(1, 4, 1)}),
            ["analysts"],
            False,
            "half",
            {"cpu": rng(0.5, 2, 0.5), "memory": None, "gpu": None},
            id="group-cannot-make-a-fixed-field-adjustable",
        ),
        pytest.param(None, ["analysts"], True, "big", BIG_AS_IS, id="admin-gets-profile-ranges"),
    ],
)
def test_effective_ranges(change, groups, admin, profile, expected):
    assert ranges_of(small(change), groups, profile, admin) == expected


def test_effective_ranges_of_fixed_profile_are_none():
    assert ranges_of(SMALL, ["analysts"], "small") is None
    assert ranges_of(EXAMPLE, ["ml-engineering"], "cpu-medium") is None


def test_example_data_science_gets_narrower_cpu_large():
    assert ranges_of(EXAMPLE, ["data-science"], "cpu-large")["cpu"] == rng(1, 4)
    assert ranges_of(EXAMPLE, ["ml-engineering"], "cpu-large")["cpu"] == rng(1, 8)


# --- availability on this host -----------------------------------------------------------------


def _min_gpus(n):
    return lambda d: d["groups"][1].update(ranges={"gpu": {"gpu": rng(n, 8)}})


@pytest.mark.parametrize(
    ("config", "groups", "host", "profile", "reason"),
    [
        pytest.param(
            "example",
            ["ml-engineering"],
            NO_GPU,
            "gpu-t4",
            "Needs 1 GPU; this host has none.",
            id="no-gpus",
        ),
        pytest.param("example", ["ml-engineering"], T4X2, "gpu-t4", None, id="t4-matches-tesla-t4"),
        pytest.param("example", ["ml-engineering"], ANY8, "gpu-t4", None, id="unknown-types-ok"),
        pytest.param(
            "example",
            ["ml-engineering"],
            A100X8,
            "gpu-t4",
            "Needs nvidia-tesla-t4 GPUs; this host has NVIDIA A100.",
            id="type-mismatch",
        ),
        pytest.param("small", ["research"], A100X8, "gpu", None, id="a100-matches"),
        pytest.param(
            "small",
            ["research"],
            HostCapabilities(4, frozenset({"NVIDIA A100-SXM4-80GB"})),
            "gpu",
            None,
            id="a100-matches-full-name",
        ),
        pytest.param(
            "small",
            ["research"],
            HostCapabilities(4, frozenset({"NVIDIA A10"})),
            "gpu",
            "Needs nvidia-a100 GPUs; this host has NVIDIA A10.",
            id="a100-is-not-a10",
        ),
        pytest.param(
            "small",
            ["gpu-only"],
            T4X4,
            "gpu",
            "Needs nvidia-a100 GPUs; this host has nvidia-tesla-t4.",
            id="a100-profile-on-t4-host",
        ),
        pytest.param("example", ["ml-engineering"], NO_GPU, "cpu-large", None, id="cpu-profile"),
    ],
)
def test_availability(config, groups, host, profile, reason):
    cfg = CONFIGS[config]
    choice = next(
        c for c in profile_choices(cfg, who(cfg, *groups), host) if c.profile.slug == profile
    )
    assert (choice.available, choice.reason) == (reason is None, reason)


def test_group_raising_gpu_minimum_needs_more_gpus():
    cfg = small(_min_gpus(2))
    choice = next(
        c
        for c in profile_choices(cfg, who(cfg, "research"), HostCapabilities(1))
        if c.profile.slug == "gpu"
    )
    assert choice.reason == "Needs 2 GPUs; this host has only 1."


def test_profile_without_allowed_image_is_unavailable():
    cfg = small(lambda d: d["groups"][3].update(images=["base"]))
    (choice,) = profile_choices(cfg, who(cfg, "gpu-only"), ANY8)
    assert not choice.available
    assert choice.reason == "No image is allowed for you with this profile."


def test_choices_carry_prices_at_own_values():
    prices = {
        c.profile.slug: c.price_per_hour
        for c in profile_choices(EXAMPLE, who(EXAMPLE, admin=True), T4X4)
    }
    # cpu-large: 2 × 0.04 + 16 GiB × 0.005; gpu-t4: 4 × 0.04 + 16 × 0.005 + 1 × 0.35 (T4 price)
    assert prices == {"cpu-small": 0.05, "cpu-medium": 0.2, "cpu-large": 0.16, "gpu-t4": 0.59}


# --- defaults and projects ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "groups", "host", "expected"),
    [
        pytest.param("example", [], NO_GPU, "cpu-small", id="default-group-default"),
        pytest.param("example", ["ml-engineering"], NO_GPU, "cpu-medium", id="group-default"),
        pytest.param(
            "example", ["data-science", "ml-engineering"], NO_GPU, "cpu-medium", id="priority-wins"
        ),
        pytest.param("small", ["research", "analysts"], A100X8, "gpu", id="priority-available"),
        pytest.param("small", ["research", "analysts"], NO_GPU, "big", id="next-group-default"),
        pytest.param("small", ["research"], NO_GPU, "small", id="config-default"),
        pytest.param("small", ["gpu-only"], NO_GPU, None, id="nothing-available"),
        pytest.param("small", [], NO_GPU, "small", id="no-group"),
    ],
)
def test_default_profile_slug(config, groups, host, expected):
    cfg = CONFIGS[config]
    access = who(cfg, *groups)
    assert default_profile_slug(cfg, access, profile_choices(cfg, access, host)) == expected


def _gpu_is_config_default(d):
    d["profiles"][0]["default"] = False
    d["profiles"][3]["default"] = True


def test_first_available_when_no_group_default_and_config_default_not_allowed():
    cfg = small(_gpu_is_config_default)
    access = who(cfg, "interns")  # no default_profile; the config default "gpu" is not theirs
    assert default_profile_slug(cfg, access, profile_choices(cfg, access, A100X8)) == "small"


def test_config_default_skipped_when_unavailable():
    cfg = small(_gpu_is_config_default)
    access = who(cfg, admin=True)
    assert default_profile_slug(cfg, access, profile_choices(cfg, access, A100X8)) == "gpu"
    assert default_profile_slug(cfg, access, profile_choices(cfg, access, NO_GPU)) == "small"


@pytest.mark.parametrize(
    ("config", "groups", "admin", "expected"),
    [
        pytest.param("example", [], False, ["personal", "churn-model"], id="default-group"),
        pytest.param(
            "example",
            ["ml-engineering"],
            False,
            ["personal", "churn-model", "vision-research"],
            id="group-project",
        ),
        pytest.param(
            "example", [], True, ["personal", "churn-model", "vision-research"], id="admin"
        ),
        pytest.param("small", [], False, ["personal", "open"], id="no-group"),
        pytest.param("small", ["analysts"], False, ["personal", "open"], id="not-in-group"),
        pytest.param("small", ["research"], False, ["personal", "open", "secret"], id="in-group"),
    ],
)
def test_project_choices(config, groups, admin, expected):
    cfg = CONFIGS[config]
    projects = project_choices(cfg, who(cfg, *groups, admin=admin))
    assert [p.name for p in projects] == expected
    assert projects[0].display_name == "Personal"


# --- resolving options -------------------------------------------------------------------------


def _gpu_optional(d):
    d["profiles"][3]["adjustable"]["gpu"]["min"] = 0


def _narrow_big_cpu(d):
    d["groups"][0]["ranges"]["big"]["cpu"] = rng(6, 8, 2)


def _tenths_below_own_cpu(d):
    d["profiles"][2]["cpu"] = 1
    d["profiles"][2]["adjustable"]["cpu"] = rng(0.1, 1, 0.1)
    d["groups"][0]["ranges"]["half"] = {"cpu": rng(0.1, 0.75, 0.1)}


def _own_cpu_off_grid(d):
    d["profiles"][1]["adjustable"]["cpu"] = rng(1, 16, 2)  # grid 1, 3, 5…; own cpu is 4


def ok(name, options, expected, *, config=EXAMPLE, groups=(), host=NO_GPU):
    """One accepted request: ``expected`` lists the ResourceRequest fields to check."""
    return pytest.param(config, groups, host, options, expected, id=name)


OK_CASES = [
    ok(
        "empty-options-default",
        {},
        {
            "profile": "cpu-small",
            "image": "python-ds",
            "image_ref": "mlfactory/python-ds:2026.11",
            "project": "personal",
            "cpu_limit": 1,
            "mem_limit": 2 * GIB,
            "gpu": 0,
            "price_per_hour": 0.05,
        },
    ),
    # cpu-large is unit priced: 3 × 0.04 + 12 GiB × 0.005
    ok(
        "form-strings",
        {"profile": "cpu-large", "cpu": "3", "memory": "12Gi"},
        {"cpu_limit": 3, "cpu_guarantee": 3, "mem_limit": 12 * GIB, "price_per_hour": 0.18},
    ),
    ok(
        "whitespace-trimmed",
        {"profile": "cpu-large", "cpu": " 2 ", "memory": " 16Gi "},
        {"cpu_limit": 2, "mem_limit": 16 * GIB},
    ),
    ok(
        "numbers-and-bytes",
        {"profile": "cpu-large", "cpu": 8, "memory": 64 * GIB},
        {"cpu_limit": 8, "mem_limit": 64 * GIB, "price_per_hour": 0.64},
        groups=ML,
    ),
    # 4 × 0.04 + 16 × 0.005 + 4 × 0.35 (the T4 price)
    ok(
        "gpus-first-allowed-image",
        {"profile": "gpu-t4", "gpu": 4, "project": "vision-research"},
        {
            "gpu": 4,
            "gpu_type": "nvidia-tesla-t4",
            "image": "pytorch",
            "node_pool": "gpu-t4",
            "disk": 50 * GIB,
            "project": "vision-research",
            "price_per_hour": 1.64,
        },
        groups=ML,
        host=T4X4,
    ),
    ok(
        "chosen-image",
        {"profile": "cpu-small", "image": "pytorch"},
        {"image": "pytorch", "image_ref": "mlfactory/pytorch:2026.11"},
        groups=ML,
    ),
    ok(
        "guarantees-scale",
        {"profile": "big", "cpu": 8, "memory": "32Gi"},
        {"cpu_limit": 8, "cpu_guarantee": 4, "mem_limit": 32 * GIB, "mem_guarantee": 16 * GIB},
        config=SMALL,
        groups=["research"],
    ),
    ok(
        "own-values-by-default",
        {"profile": "big"},
        {"cpu_limit": 4, "cpu_guarantee": 2, "mem_limit": 16 * GIB, "mem_guarantee": 8 * GIB},
        config=SMALL,
        groups=["analysts"],
    ),
    ok(
        "default-moves-into-group-range",
        {"profile": "big"},
        {"cpu_limit": 6, "cpu_guarantee": 3},
        config=small(_narrow_big_cpu),
        groups=["analysts"],
    ),
    ok(
        "default-snaps-down-without-float-noise",
        {"profile": "half"},
        {"cpu_limit": 0.7},
        config=small(_tenths_below_own_cpu),
        groups=["analysts"],
    ),
    ok(
        "own-value-accepted-off-grid",
        {"profile": "big", "cpu": 4},
        {"cpu_limit": 4},
        config=small(_own_cpu_off_grid),
        groups=["research"],
    ),
    ok(
        "fractional-step",
        {"profile": "half", "cpu": "1.5"},
        {"cpu_limit": 1.5, "cpu_guarantee": 1.5, "price_per_hour": 0.065},
        config=SMALL,
        groups=["analysts"],
    ),
    ok(
        "float-tolerance",
        {"profile": "half", "cpu": 1.5000000000001},
        {"cpu_limit": 1.5},
        config=SMALL,
        groups=["analysts"],
    ),
    ok(
        "default-gpus-capped-by-host",
        {"profile": "gpu"},
        {"gpu": 0, "gpu_type": None, "price_per_hour": 0.48},
        config=small(_gpu_optional),
        groups=["research"],
    ),
    # 8 × 0.04 + 32 × 0.005 + 8 × 2.5 (the A100 price)
    ok(
        "typed-gpu-price",
        {"profile": "gpu", "gpu": "8"},
        {"gpu": 8, "gpu_type": "nvidia-a100", "node_pool": "a100", "price_per_hour": 20.48},
        config=SMALL,
        groups=["research"],
        host=A100X8,
    ),
    ok(
        "fixed-values-restated",
        {"profile": "small", "cpu": "1", "memory": 2 * GIB, "gpu": 0},
        {"profile": "small"},
        config=SMALL,
        groups=["interns"],
    ),
]


@pytest.mark.parametrize(("config", "groups", "host", "options", "expected"), OK_CASES)
def test_resolve_request(config, groups, host, options, expected):
    req = resolve_request(config, who(config, *groups), options, host)
    assert {k: getattr(req, k) for k in expected} == expected


@pytest.mark.parametrize(("config", "groups", "host", "options", "expected"), OK_CASES)
def test_user_options_round_trip(config, groups, host, options, expected):
    access = who(config, *groups)
    req = resolve_request(config, access, options, host)
    saved = req.user_options()
    assert set(saved) == set(OPTION_KEYS)
    assert isinstance(saved["memory"], str)
    assert resolve_request(config, access, saved, host) == req
    assert resolve_request(config, access, json.loads(json.dumps(saved)), host) == req


@pytest.mark.parametrize(
    ("config", "groups", "profile"),
    [
        pytest.param(EXAMPLE, ["data-science"], "cpu-large", id="example-cpu-large"),
        pytest.param(SMALL, ["analysts", "research"], "big", id="small-big"),
        pytest.param(SMALL, ["analysts"], "half", id="small-half"),
    ],
)
def test_every_grid_value_round_trips(config, groups, profile):
    access = who(config, *groups)
    (choice,) = [c for c in profile_choices(config, access, NO_GPU) if c.profile.slug == profile]
    cpus = _grid(choice.ranges.cpu) if choice.ranges.cpu else [choice.profile.cpu]
    mems = _grid(choice.ranges.memory) if choice.ranges.memory else [choice.profile.memory]
    for cpu, memory in itertools.product(cpus, mems):
        req = resolve_request(
            config, access, {"profile": profile, "cpu": cpu, "memory": memory}, NO_GPU
        )
        assert (req.cpu_limit, req.mem_limit) == (pytest.approx(cpu), memory)
        assert resolve_request(config, access, req.user_options(), NO_GPU) == req


def _grid(r) -> list:
    out, v = [], r.min
    while v <= r.max + 1e-9:
        out.append(v)
        v += r.step
    return out


def test_summary_is_json_friendly():
    access = who(EXAMPLE, "ml-engineering")
    req = resolve_request(EXAMPLE, access, {"profile": "gpu-t4", "gpu": 2}, T4X2)
    assert json.loads(json.dumps(req.summary())) == {
        "slug": "gpu-t4",
        "display_name": "GPU (NVIDIA T4)",
        "cpu": 4,
        "memory": "16Gi",
        "gpu": 2,
        "gpu_type": "nvidia-tesla-t4",
        "disk": "50Gi",
        "image": "pytorch",
        "project": "personal",
        "price_per_hour": 0.94,
    }


def bad(name, options, field, message, *, config=EXAMPLE, groups=DS, host=NO_GPU):
    """One refused request: the RequestError's field and message."""
    return pytest.param(config, groups, host, options, field, message, id=name)


DS_PROFILES = "Available: cpu-small, cpu-medium, cpu-large"
# fmt: off
ERROR_CASES = [
    bad("unknown-key", {"cores": 2}, "cores", f"unknown option; allowed: {', '.join(OPTION_KEYS)}"),
    bad("profile-not-allowed", {"profile": "gpu-t4"}, "profile",
        f"'gpu-t4' is not available to you. {DS_PROFILES}"),
    bad("profile-unknown-reads-the-same", {"profile": "gpu-xx"}, "profile",
        f"'gpu-xx' is not available to you. {DS_PROFILES}"),
    bad("profile-none", {"profile": None}, "profile",
        f"None is not available to you. {DS_PROFILES}"),
    bad("available-list-omits-unavailable", {"profile": "x"}, "profile",
        f"'x' is not available to you. {DS_PROFILES}", groups=ML),
    bad("profile-unavailable", {"profile": "gpu-t4"}, "profile",
        "Needs 1 GPU; this host has none.", groups=ML),
    bad("no-profile-available", {}, "profile", "Needs 1 GPU; this host has none.",
        config=SMALL, groups=["gpu-only"]),
    bad("gpu-type", {"profile": "gpu-t4"}, "profile",
        "Needs nvidia-tesla-t4 GPUs; this host has NVIDIA A100.", groups=ML, host=A100X8),
    bad("image-not-allowed", {"image": "pytorch"}, "image",
        "'pytorch' is not available with profile 'cpu-small'. Available: python-ds"),
    bad("project-not-allowed", {"project": "vision-research"}, "project",
        "'vision-research' is not available to you. Available: personal, churn-model"),
    bad("cpu-off-grid", {"profile": "cpu-large", "cpu": 3.5}, "cpu",
        "3.5 is outside 1–4 in steps of 1"),
    bad("cpu-beyond-group-range", {"profile": "cpu-large", "cpu": "8"}, "cpu",
        "8 is outside 1–4 in steps of 1"),
    bad("cpu-below-range", {"profile": "cpu-large", "cpu": 0}, "cpu",
        "0 is outside 1–8 in steps of 1", groups=ML),
    bad("memory-off-grid", {"profile": "cpu-large", "memory": "6Gi"}, "memory",
        "6Gi is outside 4Gi–64Gi in steps of 4Gi", groups=ML),
    bad("memory-not-a-size", {"profile": "cpu-large", "memory": "8GB"}, "memory",
        "'8GB' is not a size; use e.g. '8Gi'"),
    bad("cpu-fixed", {"cpu": 2}, "cpu", "fixed at 1 for this profile"),
    bad("memory-fixed", {"memory": "4Gi"}, "memory", "fixed at 2Gi for this profile"),
    bad("gpu-fixed", {"gpu": 1}, "gpu", "fixed at 0 for this profile"),
    bad("gpu-above-range", {"profile": "gpu-t4", "gpu": 5}, "gpu",
        "5 is outside 1–4 in steps of 1", groups=ML, host=T4X4),
    bad("gpu-fraction", {"profile": "gpu-t4", "gpu": "1.5"}, "gpu",
        "1.5 is outside 1–4 in steps of 1", groups=ML, host=T4X4),
    bad("gpu-above-host", {"profile": "gpu-t4", "gpu": 3}, "gpu",
        "3 GPUs requested; this host has only 2.", groups=ML, host=T4X2),
    bad("optional-gpu-type", {"profile": "gpu", "gpu": 1}, "gpu",
        "Needs nvidia-a100 GPUs; this host has nvidia-tesla-t4.",
        config=small(_gpu_optional), groups=["research"], host=T4X4),
    bad("nan-string", {"profile": "cpu-large", "cpu": "nan"}, "cpu",
        "'nan' is not a number; use e.g. 2"),
    bad("inf", {"profile": "cpu-large", "cpu": float("inf")}, "cpu",
        "inf is not a number; use e.g. 2"),
    bad("bool", {"profile": "cpu-large", "cpu": True}, "cpu", "True is not a number; use e.g. 2"),
    bad("huge-int", {"profile": "cpu-large", "cpu": 10**400}, "cpu",
        f"{'1' + '0' * 38}… is not a number; use e.g. 2"),  # cut to 40 characters
]
# fmt: on


@pytest.mark.parametrize(("config", "groups", "host", "options", "field", "message"), ERROR_CASES)
def test_resolve_errors(config, groups, host, options, field, message):
    err = resolve_error(config, who(config, *groups), options, host)
    assert (err.field, err.message, str(err)) == (field, message, f"{field}: {message}")
    assert isinstance(err, ValueError)


def test_options_must_be_a_mapping():
    assert resolve_error(EXAMPLE, who(EXAMPLE), ["profile"]).field == "options"


# --- stale saved choices -----------------------------------------------------------------------


def test_saved_profile_removed_from_config():
    saved = resolve_request(SMALL, who(SMALL, "analysts"), {"profile": "half"}, NO_GPU)
    cfg = small(lambda d: d["profiles"].pop(2) and d["groups"][0].update(profiles=["small", "big"]))
    access = who(cfg, "analysts")
    err = resolve_error(cfg, access, saved.user_options())
    assert err.field == "profile" and err.message.startswith("'half' is not available to you.")
    assert default_profile_slug(cfg, access, profile_choices(cfg, access, NO_GPU)) == "big"


def test_saved_profile_no_longer_allowed():
    ml = who(EXAMPLE, "ml-engineering")
    saved = resolve_request(EXAMPLE, ml, {"profile": "gpu-t4"}, T4X2).user_options()
    moved = who(EXAMPLE, "data-science")
    assert resolve_error(EXAMPLE, moved, saved, T4X2).field == "profile"
    assert (
        default_profile_slug(EXAMPLE, moved, profile_choices(EXAMPLE, moved, T4X2)) == "cpu-small"
    )


def test_saved_image_or_range_no_longer_allowed():
    ml = who(EXAMPLE, "ml-engineering")
    saved = resolve_request(
        EXAMPLE, ml, {"profile": "cpu-large", "cpu": 8, "image": "pytorch"}, NO_GPU
    )
    ds = who(EXAMPLE, "data-science")
    options = saved.user_options()
    assert resolve_error(EXAMPLE, ds, options).field == "image"
    assert resolve_error(EXAMPLE, ds, options | {"image": "python-ds"}).field == "cpu"


# --- junk never escapes as anything but RequestError -------------------------------------------

JUNK = [
    None,
    True,
    False,
    0,
    -1,
    -0.0,
    10**400,
    -(10**400),
    1e308,
    float("nan"),
    float("inf"),
    3 + 4j,
    b"cpu-small",
    [],
    ["cpu-small"],
    {},
    {"a": 1},
    (1, 2),
    {1, 2},
    object(),
    "",
    " ",
    "ünïcødé",
    "٣",
    "３",
    "1e3",
    "0x10",
    "1_0",
    "-1",
    "+1",
    "\x00",
    "Gi",
    "1.",
    ".5",
    "9" * 400,
    "9" * 400 + "Gi",
    "9" * 400 + ".5",
    "1" * 10_000,
    "cpu-small\n",
    "CPU-SMALL",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "cpu-small; rm -rf /",
]


@pytest.mark.parametrize("key", OPTION_KEYS)
@pytest.mark.parametrize("profile", ["cpu-small", "cpu-large", "gpu-t4"])
def test_junk_values_raise_only_request_error(key, profile):
    access = who(EXAMPLE, "ml-engineering")
    for value in JUNK:
        options = {key: value} if key == "profile" else {"profile": profile, key: value}
        try:
            req = resolve_request(EXAMPLE, access, options, T4X2)
        except RequestError as err:
            assert err.field in OPTION_KEYS
            assert len(err.message) < 200
        else:
            assert isinstance(req, ResourceRequest)


@pytest.mark.parametrize(
    "options",
    [None, [], "profile", 42, {None: 1}, {1: "x"}, {"": 1}, {"x" * 1000: 1}, {("a",): 1}],
    ids=repr,
)
def test_junk_options_raise_only_request_error(options):
    with pytest.raises(RequestError) as info:
        resolve_request(EXAMPLE, who(EXAMPLE), options, NO_GPU)
    assert len(str(info.value)) < 200


def test_admin_may_choose_anything_allowed_by_the_profile():
    admin = who(EXAMPLE, admin=True)
    req = resolve_request(
        EXAMPLE,
        admin,
        {"profile": "cpu-large", "cpu": 8, "image": "pytorch", "project": "vision-research"},
        NO_GPU,
    )
    assert (req.cpu_limit, req.image, req.project) == (8, "pytorch", "vision-research")
