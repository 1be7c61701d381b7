"""Bigger profiles should cost more: finds each pair where a profile with at least as much of
every resource is cheaper than a smaller one (``mlfactory config check`` warns about them).

Pure: takes profiles and unit prices; reads no files. Prices come from ``pricing.py``, so the
check sees exactly what the picker and the ledger charge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlfactory.hub.platform_config import Pricing, Profile, format_size
from mlfactory.spawner.pricing import hourly_price

__all__ = ["PriceInversion", "Resources", "is_bigger", "price_inversions", "resources_of"]


@dataclass(frozen=True)
class Resources:
    """What a profile gives at its own values (an adjustable profile: its starting values)."""

    cpu: float
    memory: int  # bytes
    gpu: int
    gpu_type: str | None  # None when gpu is 0: no GPU has no type
    disk: int  # bytes

    def text(self) -> str:
        """ "2 cores, 16Gi memory, 1× nvidia-tesla-t4 GPU, 50Gi disk"."""
        cpu = int(self.cpu) if float(self.cpu).is_integer() else self.cpu
        parts = [f"{cpu} {'core' if cpu == 1 else 'cores'}", f"{format_size(self.memory)} memory"]
        if self.gpu:
            kind = f" {self.gpu_type}" if self.gpu_type else ""
            parts.append(f"{self.gpu}×{kind} {'GPU' if self.gpu == 1 else 'GPUs'}")
        parts.append(f"{format_size(self.disk)} disk")
        return ", ".join(parts)


def resources_of(profile: Profile) -> Resources:
    return Resources(
        cpu=profile.cpu,
        memory=profile.memory,
        gpu=profile.gpu,
        gpu_type=profile.gpu_type if profile.gpu else None,
        disk=profile.disk,
    )


def is_bigger(a: Resources, b: Resources) -> bool:
    """Whether ``a`` has at least as much CPU, memory, GPUs and disk as ``b``, and more of one.

    GPUs of different types are not comparable (two T4s are not "more" than one A100), so
    two profiles that both have GPUs are compared only when the types are the same.
    """
    if a.gpu and b.gpu and a.gpu_type != b.gpu_type:
        return False
    pairs = ((a.cpu, b.cpu), (a.memory, b.memory), (a.gpu, b.gpu), (a.disk, b.disk))
    return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)


@dataclass(frozen=True)
class PriceInversion:
    """``bigger`` is bigger than ``smaller`` (``is_bigger``) yet costs less per hour."""

    bigger: str  # profile slug
    bigger_resources: Resources
    bigger_price: float
    smaller: str
    smaller_resources: Resources
    smaller_price: float

    def message(self, currency: str) -> str:
        return (
            f"profile {self.bigger!r} ({self.bigger_resources.text()}) costs "
            f"{self.bigger_price:g} {currency}/hour, less than {self.smaller!r} "
            f"({self.smaller_resources.text()}) at {self.smaller_price:g} {currency}/hour, "
            "though it has at least as much of every resource; price the bigger profile "
            "higher (its price_per_hour, or the unit prices in pricing: when it has none)"
        )


def price_inversions(profiles: Sequence[Profile], pricing: Pricing | None) -> list[PriceInversion]:
    """Every (bigger, smaller) pair, in config order, where the bigger profile is cheaper.

    Prices are compared at each profile's own values, the ones its card shows first; equal
    prices are not flagged (a flat rate across sizes is a choice, not a mistake).
    """
    priced = [
        (
            p.slug,
            resources_of(p),
            hourly_price(p, cpu=p.cpu, memory=p.memory, gpu=p.gpu, pricing=pricing),
        )
        for p in profiles
    ]
    return [
        PriceInversion(big, big_res, big_price, small, small_res, small_price)
        for big, big_res, big_price in priced
        for small, small_res, small_price in priced
        if is_bigger(big_res, small_res) and big_price < small_price
    ]
