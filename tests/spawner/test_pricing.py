"""hourly_price: fixed prices, unit prices per CPU, GiB and GPU (by type), rounding."""

from __future__ import annotations

import pytest
from mlfactory.hub.platform_config import Pricing, Profile
from mlfactory.spawner.pricing import hourly_price

GIB = 2**30
PRICING = Pricing(
    cpu_hour=0.04, memory_gib_hour=0.005, gpu_hour=0.9, gpu_type_hour={"nvidia-a100": 2.5}
)


def profile(**fields) -> Profile:
    base = {"slug": "p", "display_name": "P", "cpu": 1, "memory": "1Gi"}
    return Profile.model_validate(base | fields)


FIXED = profile(price_per_hour=0.2)
UNIT = profile(adjustable={"cpu": {"min": 1, "max": 16}})
A100 = profile(gpu=1, gpu_type="nvidia-a100")
UNPRICED_TYPE = profile(gpu=1, gpu_type="amd-mi300")
ANY_GPU = profile(gpu=1)


@pytest.mark.parametrize(
    ("prof", "cpu", "memory", "gpu", "expected"),
    [
        pytest.param(FIXED, 1, GIB, 0, 0.2, id="fixed"),
        pytest.param(FIXED, 64, 512 * GIB, 8, 0.2, id="fixed-ignores-resources"),
        pytest.param(UNIT, 1, GIB, 0, 0.045, id="unit-1cpu-1gib"),
        pytest.param(UNIT, 8, 32 * GIB, 0, 0.48, id="unit-8cpu-32gib"),
        pytest.param(UNIT, 0.5, 512 * 2**20, 0, 0.0225, id="unit-fractions"),
        pytest.param(A100, 8, 64 * GIB, 2, 5.64, id="gpu-type-price"),
        pytest.param(UNPRICED_TYPE, 1, GIB, 2, 1.845, id="gpu-type-unlisted-uses-gpu_hour"),
        pytest.param(ANY_GPU, 1, GIB, 1, 0.945, id="gpu-without-type-uses-gpu_hour"),
        pytest.param(A100, 1, GIB, 0, 0.045, id="zero-gpus-cost-nothing"),
        pytest.param(UNIT, 1, 1, 0, 0.04, id="rounded-to-4-decimals"),
    ],
)
def test_hourly_price(prof, cpu, memory, gpu, expected):
    assert hourly_price(prof, cpu=cpu, memory=memory, gpu=gpu, pricing=PRICING) == expected


def test_rounding_keeps_four_decimals():
    price = hourly_price(UNIT, cpu=3, memory=3 * GIB, gpu=0, pricing=PRICING)
    assert price == 0.135 and price == round(price, 4)


def test_fixed_price_needs_no_pricing_section():
    assert hourly_price(FIXED, cpu=1, memory=GIB, gpu=0, pricing=None) == 0.2


def test_unit_priced_without_pricing_is_a_clear_error():
    with pytest.raises(ValueError, match=r"profile 'p' has no price_per_hour .* pricing: section"):
        hourly_price(UNIT, cpu=1, memory=GIB, gpu=0, pricing=None)
