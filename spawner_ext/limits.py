"""Turning a server's CPU and memory request into concrete enforcement settings: which
cores it is pinned to, its CPU quota and weight, and its memory limits.

Pure: the host's cores and their load are passed in; cgroups.py applies the plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The kernel refuses a CFS quota under 1 ms and periods outside 1 ms .. 1 s.
MIN_QUOTA_US = 1_000
MIN_PERIOD_US = 1_000
MAX_PERIOD_US = 1_000_000
WEIGHT_PER_CORE = 100  # cgroup v2's default weight is what one guaranteed core gets
MIN_WEIGHT, MAX_WEIGHT = 1, 10_000


@dataclass(frozen=True)
class LimitsPlan:
    cpus: tuple[int, ...]  # cores the server is pinned to
    cpu_quota_us: int  # CPU time allowed per period, across all its cores
    cpu_period_us: int
    cpu_weight: int  # 1..10000, cgroup v2 scale
    memory_max: int  # bytes; the kernel reclaims, then OOM-kills, above this
    memory_low: int  # bytes protected from reclaim under host memory pressure

    @property
    def cpu_shares(self) -> int:
        """``cpu_weight`` on cgroup v1's ``cpu.shares`` scale (1024 = one core; min 2)."""
        return max(2, round(self.cpu_weight * 1024 / 100))


def plan_limits(
    *,
    cpu_limit: float,
    cpu_guarantee: float,
    mem_limit: int,
    mem_guarantee: int,
    host_cpus: Sequence[int],
    cpu_load: Mapping[int, float] | None = None,
    period_us: int = 100_000,
) -> LimitsPlan:
    """The plan for a server allowed ``cpu_limit`` cores and ``mem_limit`` bytes.

    It is pinned to ceil(cpu_limit) of ``host_cpus`` (all of them if it asks for more),
    the least loaded first by ``cpu_load`` (missing cores count as idle; ties go to the
    lower index). The quota is cpu_limit × period, capped at the pinned cores since more
    could never be used, and at least the kernel's 1 ms. The weight is 100 per guaranteed
    core, so guarantees share a contended host in proportion.
    """
    if not cpu_limit > 0:
        raise ValueError(f"cpu_limit must be > 0, not {cpu_limit}")
    if not 0 <= cpu_guarantee <= cpu_limit:
        raise ValueError(f"cpu_guarantee must be within 0..cpu_limit, not {cpu_guarantee}")
    if mem_limit <= 0:
        raise ValueError(f"mem_limit must be > 0 bytes, not {mem_limit}")
    if not 0 <= mem_guarantee <= mem_limit:
        raise ValueError(f"mem_guarantee must be within 0..mem_limit, not {mem_guarantee}")
    if not MIN_PERIOD_US <= period_us <= MAX_PERIOD_US:
        raise ValueError(f"period_us must be within {MIN_PERIOD_US}..{MAX_PERIOD_US}")
    cores = sorted(set(host_cpus))
    if not cores:
        raise ValueError("host_cpus is empty")
    load = cpu_load or {}
    count = min(math.ceil(cpu_limit), len(cores))
    chosen = sorted(sorted(cores, key=lambda c: (load.get(c, 0.0), c))[:count])
    quota = max(MIN_QUOTA_US, round(min(cpu_limit, count) * period_us))
    weight = min(MAX_WEIGHT, max(MIN_WEIGHT, round(cpu_guarantee * WEIGHT_PER_CORE)))
    return LimitsPlan(
        cpus=tuple(chosen),
        cpu_quota_us=quota,
        cpu_period_us=period_us,
        cpu_weight=weight,
        memory_max=mem_limit,
        memory_low=mem_guarantee,
    )
