"""The resolver: turning submitted options into a ResourceRequest, or a RequestError."""

from __future__ import annotations

import itertools
import json

import pytest
from mlfactory.spawner.profiles import (
    OPTION_KEYS,
    RequestError,
    ResourceRequest,
    default_profile_slug,
    profile_choices,
    resolve_request,
)

from .profile_cases import (
    A100X8,
    DS,
    EXAMPLE,
    GIB,
    ML,
    NO_GPU,
    SMALL,
    T4X2,
    T4X4,
    resolve_error,
    rng,
    small,
    who,
)

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
            "image_ref": "mlfactory/python-ds:0.1.0",
            "project": "personal",
            "cpu_limit": 1,
            "mem_limit": 2 * GIB,
            "gpu": 0,
            "price_per_hour": 0.05,
        },
    ),
    # cpu-large is unit priced: 3 × 0.04 + 12 GiB × 0.005, plus 50 GiB disk × 0.08 / 730 h
    ok(
        "form-strings",
        {"profile": "cpu-large", "cpu": "3", "memory": "12Gi"},
        {"cpu_limit": 3, "cpu_guarantee": 3, "mem_limit": 12 * GIB, "price_per_hour": 0.1855},
    ),
    ok(
        "whitespace-trimmed",
        {"profile": "cpu-large", "cpu": " 2 ", "memory": " 16Gi "},
        {"cpu_limit": 2, "mem_limit": 16 * GIB},
    ),
    ok(
        "numbers-and-bytes",
        {"profile": "cpu-large", "cpu": 8, "memory": 64 * GIB},
        {"cpu_limit": 8, "mem_limit": 64 * GIB, "price_per_hour": 0.6455},
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
            "price_per_hour": 1.6455,
        },
        groups=ML,
        host=T4X4,
    ),
    ok(
        "chosen-image",
        {"profile": "cpu-small", "image": "pytorch"},
        {"image": "pytorch", "image_ref": "mlfactory/pytorch:0.1.0"},
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
        "image_ref": "mlfactory/pytorch:0.1.0",
        "project": "personal",
        "price_per_hour": 0.9455,
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
        "Needs 1 GPU; this host has no GPUs.", groups=ML),
    bad("no-profile-available", {}, "profile", "Needs 1 GPU; this host has no GPUs.",
        config=SMALL, groups=["gpu-only"]),
    bad("gpu-type", {"profile": "gpu-t4"}, "profile",
        "Needs nvidia-tesla-t4 GPUs; this host has NVIDIA A100.", groups=ML, host=A100X8),
    bad("image-not-allowed", {"image": "pytorch"}, "image",
        "'pytorch' is not in the image catalog; choose one of: python-ds, minimal"),
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
