"""Schema checks for adjustable ranges, group ranges and defaults, projects and pricing:
each refusal names the file and the key path an admin has to fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from mlfactory.hub import platform_config as pc
from mlfactory.hub.platform_config import ConfigError, parse_platform_config

EXAMPLE = Path(pc.__file__).with_name("mlfactory.yaml")
# Indexes into the shipped example.
CPU_SMALL, CPU_LARGE, GPU_T4 = 0, 2, 3
DATA_SCIENCE, ML_ENGINEERING = 0, 1


@pytest.fixture
def example() -> dict:
    """A fresh, mutable copy of the shipped example."""
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def profile(d: dict, i: int) -> dict:
    return d["profiles"][i]


def group(d: dict, i: int) -> dict:
    return d["groups"][i]


def _set(target: Callable[[dict], dict], **values) -> Callable[[dict], None]:
    return lambda d: target(d).update(values)


CASES = [
    # ranges ordering
    pytest.param(
        _set(lambda d: profile(d, CPU_LARGE)["adjustable"]["cpu"], min=9),
        "profiles[2].adjustable.cpu: min (9.0) is above max (8.0)",
        id="profile-cpu-range-reversed",
    ),
    pytest.param(
        _set(lambda d: profile(d, CPU_LARGE)["adjustable"]["memory"], min="128Gi"),
        "profiles[2].adjustable.memory: min (128Gi) is above max (64Gi)",
        id="profile-memory-range-reversed",
    ),
    pytest.param(
        _set(lambda d: profile(d, GPU_T4)["adjustable"]["gpu"], min=4, max=2),
        "profiles[3].adjustable.gpu: min (4.0) is above max (2.0)",
        id="profile-gpu-range-reversed",
    ),
    pytest.param(
        _set(lambda d: group(d, DATA_SCIENCE)["ranges"]["cpu-large"]["cpu"], min=5),
        "groups[0].ranges.cpu-large.cpu: min (5.0) is above max (4.0)",
        id="group-cpu-range-reversed",
    ),
    pytest.param(
        _set(lambda d: group(d, DATA_SCIENCE)["ranges"]["cpu-large"]["memory"], min="64Gi"),
        "groups[0].ranges.cpu-large.memory: min (64Gi) is above max (32Gi)",
        id="group-memory-range-reversed",
    ),
    pytest.param(
        _set(lambda d: profile(d, CPU_LARGE)["adjustable"]["cpu"], step=0),
        "profiles[2].adjustable.cpu.step: Input should be greater than 0",
        id="cpu-step-zero",
    ),
    pytest.param(
        _set(lambda d: profile(d, CPU_LARGE)["adjustable"]["memory"], step=0),
        "profiles[2].adjustable.memory: step must be positive",
        id="memory-step-zero",
    ),
    # adjustable profiles are unit priced
    pytest.param(
        _set(lambda d: profile(d, CPU_LARGE), price_per_hour=0.5),
        "profiles[2]: an adjustable profile is priced per unit: remove price_per_hour",
        id="adjustable-with-fixed-price",
    ),
    # a profile's own values sit inside its ranges
    pytest.param(
        _set(lambda d: profile(d, CPU_LARGE), cpu=16),
        "profiles[2]: adjustable.cpu: the profile's own cpu is outside the range",
        id="own-cpu-outside-range",
    ),
    pytest.param(
        _set(lambda d: profile(d, CPU_LARGE), memory="1Gi"),
        "profiles[2]: adjustable.memory: the profile's own memory is outside the range",
        id="own-memory-outside-range",
    ),
    pytest.param(
        _set(lambda d: profile(d, GPU_T4), gpu=8),
        "profiles[3]: adjustable.gpu: the profile's own gpu is outside the range",
        id="own-gpu-outside-range",
    ),
    # groups
    pytest.param(
        _set(lambda d: group(d, DATA_SCIENCE), default_profile="gpu-t4"),
        "groups[0].default_profile: 'gpu-t4' is not one of this group's profiles "
        "(cpu-small, cpu-medium, cpu-large)",
        id="group-default-profile-not-in-group",
    ),
    pytest.param(
        _set(lambda d: group(d, DATA_SCIENCE)["ranges"], **{"cpu-small": {"cpu": {"min": 1}}}),
        "groups[0].ranges.cpu-small.cpu.max: required key is missing",
        id="group-range-incomplete",
    ),
    pytest.param(
        _set(
            lambda d: group(d, DATA_SCIENCE)["ranges"],
            **{"cpu-small": {"cpu": {"min": 1, "max": 2}}},
        ),
        "groups[0].ranges.cpu-small: the profile is not adjustable",
        id="group-ranges-for-fixed-profile",
    ),
    pytest.param(
        _set(
            lambda d: group(d, DATA_SCIENCE)["ranges"], **{"gpu-t4": {"gpu": {"min": 1, "max": 2}}}
        ),
        "groups[0].ranges.gpu-t4: not one of this group's profiles",
        id="group-ranges-for-profile-outside-group",
    ),
    pytest.param(
        _set(lambda d: group(d, DATA_SCIENCE)["ranges"], nope={"cpu": {"min": 1, "max": 2}}),
        "groups[0].ranges.nope: not one of this group's profiles",
        id="group-ranges-for-unknown-profile",
    ),
    # cross references
    pytest.param(
        lambda d: d.update(default_group="contractors"),
        "default_group: 'contractors' is not a defined group; defined: data-science, "
        "ml-engineering",
        id="unknown-default-group",
    ),
    pytest.param(
        _set(lambda d: d["projects"][1], groups=["ml-engineering", "vision"]),
        "projects[1].groups[1]: 'vision' is not a defined group; defined: data-science, "
        "ml-engineering",
        id="unknown-project-group",
    ),
    pytest.param(
        lambda d: d.pop("pricing"),
        "profiles[2]: no price_per_hour and no pricing: section; set one of them",
        id="unit-priced-profile-without-pricing",
    ),
]


@pytest.mark.parametrize(("change", "expected"), CASES)
def test_refusals_name_the_key_path(example, change, expected):
    change(example)
    with pytest.raises(ConfigError) as info:
        parse_platform_config(example, "site.yaml")
    assert f"site.yaml: {expected}" in str(info.value)


def test_every_unpriced_profile_is_named(example):
    example.pop("pricing")
    with pytest.raises(ConfigError) as info:
        parse_platform_config(example, "site.yaml")
    assert "profiles[2]: no price_per_hour" in str(info.value)
    assert "profiles[3]: no price_per_hour" in str(info.value)
    assert "profiles[0]" not in str(info.value)


def test_fixed_prices_need_no_pricing_section(example):
    example.pop("pricing")
    example["profiles"] = [p for p in example["profiles"] if "price_per_hour" in p]
    fixed = [p["slug"] for p in example["profiles"]]
    assert fixed  # the example shows a fixed price
    for g in example["groups"]:
        g["profiles"] = fixed
        g["default_profile"] = fixed[0]
        g["ranges"] = {}
    example["culling"]["profiles"] = {"cpu-small": {"idle_timeout": "4h"}}
    cfg = parse_platform_config(example)
    assert cfg.pricing is None


def test_example_ranges_and_defaults_parse(example):
    cfg = parse_platform_config(example)
    large = cfg.profile("cpu-large").adjustable
    assert (large.cpu.min, large.cpu.max, large.cpu.step) == (1, 8, 1)
    assert large.memory.step == 4 * 2**30
    narrowed = cfg.group("data-science").ranges["cpu-large"]
    assert (narrowed.cpu.max, narrowed.memory.max, narrowed.gpu) == (4, 32 * 2**30, None)
    assert cfg.group("ml-engineering").priority == 10
    assert cfg.default_group == "data-science"


def test_range_steps_default_to_one_unit(example):
    profile(example, CPU_LARGE)["adjustable"] = {
        "cpu": {"min": 1, "max": 8},
        "memory": {"min": "4Gi", "max": "64Gi"},
    }
    adjustable = parse_platform_config(example).profile("cpu-large").adjustable
    assert (adjustable.cpu.step, adjustable.memory.step) == (1, 2**30)


def test_a_group_may_narrow_the_gpu_range(example):
    group(example, ML_ENGINEERING)["ranges"] = {"gpu-t4": {"gpu": {"min": 1, "max": 2}}}
    cfg = parse_platform_config(example)
    assert cfg.group("ml-engineering").ranges["gpu-t4"].gpu.max == 2
