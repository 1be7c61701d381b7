"""plan_limits: cores, quota, weight and memory from a server's request."""

from __future__ import annotations

import pytest
from mlfactory.spawner.limits import LimitsPlan, plan_limits

GIB = 1024**3
HOST = (0, 1, 2, 3)


def plan(**overrides) -> LimitsPlan:
    kwargs = {
        "cpu_limit": 1.0,
        "cpu_guarantee": 0.5,
        "mem_limit": 2 * GIB,
        "mem_guarantee": GIB,
        "host_cpus": HOST,
    }
    return plan_limits(**(kwargs | overrides))


def test_a_typical_plan():
    assert plan(cpu_limit=1.5, cpu_guarantee=1.0) == LimitsPlan(
        cpus=(0, 1),
        cpu_quota_us=150_000,
        cpu_period_us=100_000,
        cpu_weight=100,
        memory_max=2 * GIB,
        memory_low=GIB,
    )


@pytest.mark.parametrize(
    ("cpu_limit", "cores"), [(0.1, 1), (0.5, 1), (1.0, 1), (1.01, 2), (2.0, 2), (3.5, 4)]
)
def test_pins_to_ceil_of_the_limit(cpu_limit, cores):
    assert len(plan(cpu_limit=cpu_limit, cpu_guarantee=0).cpus) == cores


def test_more_than_the_host_has_gets_every_core_and_their_quota():
    p = plan(cpu_limit=8, cpu_guarantee=0)
    assert p.cpus == HOST
    assert p.cpu_quota_us == 4 * 100_000


def test_least_loaded_cores_first():
    load = {0: 0.9, 1: 0.2, 2: 0.0, 3: 0.5}
    assert plan(cpu_limit=2, cpu_load=load).cpus == (1, 2)


def test_ties_go_to_the_lower_index_and_missing_load_is_idle():
    assert plan(cpu_limit=2, cpu_load={0: 1.0, 1: 0.5}).cpus == (2, 3)
    assert plan(cpu_limit=3, cpu_load={0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5}).cpus == (0, 1, 2)


def test_host_cores_need_not_be_contiguous_or_sorted():
    assert plan(cpu_limit=2, host_cpus=[7, 3, 5, 3]).cpus == (3, 5)


@pytest.mark.parametrize(
    ("cpu_limit", "period", "quota"),
    [
        (0.5, 100_000, 50_000),
        (0.25, 100_000, 25_000),
        (1.5, 50_000, 75_000),
        (0.001, 100_000, 1_000),
    ],
)
def test_quota_is_the_limit_times_the_period(cpu_limit, period, quota):
    p = plan(cpu_limit=cpu_limit, cpu_guarantee=0, period_us=period)
    assert (p.cpu_quota_us, p.cpu_period_us) == (quota, period)


@pytest.mark.parametrize(
    ("guarantee", "weight", "shares"),
    [(0, 1, 10), (0.005, 1, 10), (0.25, 25, 256), (0.5, 50, 512), (1, 100, 1024), (2.5, 250, 2560)],
)
def test_weight_is_100_per_guaranteed_core(guarantee, weight, shares):
    p = plan(cpu_limit=4, cpu_guarantee=guarantee)
    assert (p.cpu_weight, p.cpu_shares) == (weight, shares)


def test_weight_is_clamped_to_the_v2_range():
    p = plan(cpu_limit=200, cpu_guarantee=150, host_cpus=range(256))
    assert (p.cpu_weight, p.cpu_shares) == (10_000, 102_400)


def test_cpu_shares_never_below_the_kernel_minimum():
    assert LimitsPlan((0,), 1000, 100_000, 1, 1, 0).cpu_shares == 10
    assert LimitsPlan((0,), 1000, 100_000, 0, 1, 0).cpu_shares == 2


def test_memory_is_passed_through():
    p = plan(mem_limit=512 * 1024**2, mem_guarantee=0)
    assert (p.memory_max, p.memory_low) == (512 * 1024**2, 0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"cpu_limit": 0},
        {"cpu_limit": -1},
        {"cpu_guarantee": -0.1},
        {"cpu_guarantee": 2.0},  # above the limit
        {"mem_limit": 0},
        {"mem_guarantee": 3 * GIB},  # above the limit
        {"mem_guarantee": -1},
        {"host_cpus": ()},
        {"period_us": 999},
        {"period_us": 1_000_001},
    ],
)
def test_nonsense_is_refused(overrides):
    with pytest.raises(ValueError):
        plan(**overrides)
