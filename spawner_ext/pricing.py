"""What a server costs per hour: a profile's fixed price, or unit prices times resources.

Pure: callers pass the resolved resources; nothing here reads config files or clocks.
"""

from __future__ import annotations

from mlfactory.hub.platform_config import Pricing, Profile

GIB = 2**30
HOURS_PER_MONTH = 730  # the cloud providers' convention for monthly disk prices


def disk_hourly(disk: int, pricing: Pricing | None) -> float:
    """Currency per hour for ``disk`` bytes of storage at the monthly GiB price."""
    if pricing is None:
        return 0.0
    return disk / GIB * pricing.disk_gib_month / HOURS_PER_MONTH


def hourly_price(
    profile: Profile, *, cpu: float, memory: int, gpu: int, pricing: Pricing | None
) -> float:
    """Currency per hour for ``profile`` at ``cpu`` cores, ``memory`` bytes and ``gpu`` GPUs.

    A fixed ``price_per_hour`` wins whatever the resources; otherwise each unit is priced,
    GPUs at their type's price when ``pricing.gpu_type_hour`` names it, else ``gpu_hour``,
    plus the profile's disk at ``disk_gib_month`` (disk is not adjustable).
    """
    if profile.price_per_hour is not None:
        return profile.price_per_hour
    if pricing is None:
        raise ValueError(
            f"profile {profile.slug!r} has no price_per_hour and the config has no pricing: "
            "section; set one of them"
        )
    per_gpu = pricing.gpu_hour
    if profile.gpu_type is not None:
        per_gpu = pricing.gpu_type_hour.get(profile.gpu_type, per_gpu)
    price = (
        cpu * pricing.cpu_hour
        + memory / GIB * pricing.memory_gib_hour
        + gpu * per_gpu
        + disk_hourly(profile.disk, pricing)
    )
    return round(price, 4)
