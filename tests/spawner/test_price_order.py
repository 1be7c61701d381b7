"""price_order: "bigger" (at least as much of every resource, more of one, GPUs of one type)
and the pairs where the bigger profile costs less than the smaller one."""

from __future__ import annotations

import pytest
from mlfactory.hub.platform_config import PACKAGED_CONFIG, Pricing, Profile, load_platform_config
from mlfactory.spawner.price_order import Resources, is_bigger, price_inversions, resources_of
from mlfactory.spawner.pricing import hourly_price

GIB = 2**30
PRICING = Pricing(cpu_hour=0.04, memory_gib_hour=0.005, gpu_hour=0.9, disk_gib_month=0.08)


def profile(slug: str, **fields) -> Profile:
    base = {"slug": slug, "display_name": slug, "cpu": 2, "memory": "8Gi", "disk": "20Gi"}
    return Profile.model_validate(base | fields)


def res(cpu=2, memory=8, gpu=0, gpu_type=None, disk=20) -> Resources:
    return Resources(cpu, memory * GIB, gpu, gpu_type, disk * GIB)


@pytest.mark.parametrize(
    ("a", "b", "bigger"),
    [
        pytest.param(res(memory=16), res(), True, id="more-memory"),
        pytest.param(res(cpu=2.5), res(), True, id="more-cpu-fractional"),
        pytest.param(res(disk=50), res(), True, id="more-disk"),
        pytest.param(res(gpu=1), res(), True, id="a-gpu-beats-none"),
        pytest.param(res(gpu=1, gpu_type="t4"), res(), True, id="a-typed-gpu-beats-none"),
        pytest.param(res(), res(), False, id="equal-is-not-bigger"),
        pytest.param(res(cpu=4, memory=4), res(), False, id="more-cpu-less-memory"),
        pytest.param(res(memory=16, disk=10), res(), False, id="more-memory-less-disk"),
        pytest.param(res(), res(memory=16), False, id="smaller"),
        pytest.param(res(gpu=2, gpu_type="t4"), res(gpu=1, gpu_type="t4"), True, id="same-type"),
        pytest.param(
            res(gpu=2, gpu_type="t4"), res(gpu=1, gpu_type="a100"), False, id="other-gpu-type"
        ),
        pytest.param(res(gpu=2), res(gpu=1, gpu_type="a100"), False, id="untyped-vs-typed"),
    ],
)
def test_bigger_means_at_least_as_much_of_everything_and_more_of_one(a, b, bigger):
    assert is_bigger(a, b) is bigger
    if bigger:
        assert not is_bigger(b, a)  # never both ways


def test_resources_of_a_profile_without_gpus_have_no_gpu_type():
    gpu_ready = profile("g", gpu_type="t4", adjustable={"gpu": {"min": 0, "max": 2}})
    assert resources_of(gpu_ready) == res(gpu=0, gpu_type=None)
    assert resources_of(profile("t", gpu=1, gpu_type="t4")).gpu_type == "t4"


def test_a_bigger_fixed_price_profile_cheaper_than_a_smaller_one_is_found():
    small = profile("small", cpu=1, memory="2Gi", disk="10Gi", price_per_hour=0.05)
    medium = profile("medium", price_per_hour=0.20)
    large = profile("large", memory="16Gi", disk="50Gi")  # unit-priced: 0.1655
    (inversion,) = price_inversions([small, medium, large], PRICING)
    assert (inversion.bigger, inversion.smaller) == ("large", "medium")
    assert inversion.bigger_price == hourly_price(
        large, cpu=2, memory=16 * GIB, gpu=0, pricing=PRICING
    )
    assert inversion.smaller_price == 0.20
    message = inversion.message("USD")
    assert "'large' (2 cores, 16Gi memory, 50Gi disk) costs 0.1655 USD/hour" in message
    assert "less than 'medium' (2 cores, 8Gi memory, 20Gi disk) at 0.2 USD/hour" in message
    assert "price_per_hour" in message and "pricing:" in message


def test_every_inverted_pair_is_reported_in_config_order():
    small = profile("small", cpu=1, memory="2Gi", price_per_hour=0.30)
    medium = profile("medium", price_per_hour=0.20)
    large = profile("large", cpu=4, memory="16Gi", price_per_hour=0.10)
    pairs = [(i.bigger, i.smaller) for i in price_inversions([small, medium, large], PRICING)]
    assert pairs == [("medium", "small"), ("large", "small"), ("large", "medium")]


@pytest.mark.parametrize(
    "profiles",
    [
        pytest.param(
            [profile("a", price_per_hour=0.2), profile("b", memory="16Gi", price_per_hour=0.2)],
            id="equal-prices-are-a-flat-rate",
        ),
        pytest.param(
            [
                profile("a", price_per_hour=0.3),
                profile("b", cpu=8, memory="4Gi", price_per_hour=0.1),
            ],
            id="not-comparable",
        ),
        pytest.param(
            [
                profile("a100", gpu=1, gpu_type="a100", price_per_hour=2.5),
                profile("t4s", gpu=2, gpu_type="t4", price_per_hour=0.8),
            ],
            id="other-gpu-types",
        ),
        pytest.param([profile("a"), profile("b", cpu=4, memory="16Gi")], id="unit-priced-only"),
    ],
)
def test_no_inversion(profiles):
    assert price_inversions(profiles, PRICING) == []


def test_the_shipped_example_prices_bigger_profiles_higher():
    config = load_platform_config(PACKAGED_CONFIG)
    assert price_inversions(config.profiles, config.pricing) == []
    prices = {
        p.slug: hourly_price(p, cpu=p.cpu, memory=p.memory, gpu=p.gpu, pricing=config.pricing)
        for p in config.profiles
    }
    # the example: CPU large must not cost less than CPU medium
    assert prices["cpu-large"] > prices["cpu-medium"] > prices["cpu-small"]
