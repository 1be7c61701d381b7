"""The resolver: who may use which profiles, ranges, availability and defaults."""

from __future__ import annotations

import pytest
from mlfactory.spawner.profiles import (
    HostCapabilities,
    UserAccess,
    default_profile_slug,
    profile_choices,
    project_choices,
    user_access,
)

from .profile_cases import (
    A100X8,
    ANY8,
    CONFIGS,
    EXAMPLE,
    GIB,
    NO_GPU,
    SMALL,
    T4X2,
    T4X4,
    rng,
    slugs,
    small,
    who,
)

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
        pytest.param(
            "example", [], False, "cpu-small", ["python-ds", "minimal"], id="example-default"
        ),
        pytest.param(
            "example",
            ["ml-engineering"],
            False,
            "cpu-small",
            ["python-ds", "minimal", "pytorch"],
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
            "Needs 1 GPU; this host has no GPUs.",
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
    # cpu-small: its fixed price; cpu-medium: 2 × 0.04 + 8 GiB × 0.005 + 20 GiB of disk;
    # cpu-large: 2 × 0.04 + 16 GiB × 0.005; gpu-t4: 4 × 0.04 + 16 × 0.005 + 1 × 0.35 (T4 price);
    # both plus 50 GiB of disk at 0.08 per GiB-month of 730 hours (0.0055 after rounding)
    assert prices == {
        "cpu-small": 0.05,
        "cpu-medium": 0.1222,
        "cpu-large": 0.1655,
        "gpu-t4": 0.5955,
    }


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
