"""What this machine offers to local servers, shared by every spawner in the hub process.

GPUs (detected once with nvidia-smi, handed out so no device serves two servers), the
cgroups this host lets us write, and which CPU cores are already pinned. The detection
is I/O and runs once, on first use; the decisions live in the pure modules it calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import ClassVar

from .cgroups import CgroupManager, CgroupSupport, detect_cgroups
from .form import Enforcement
from .gpus import GpuAllocator, detect_gpus
from .limits import LimitsPlan
from .profiles import HostCapabilities

log = logging.getLogger(__name__)


@dataclass
class LocalHost:
    allocator: GpuAllocator
    gpu_types: frozenset[str]
    cgroup_support: CgroupSupport
    cpus: tuple[int, ...]
    cgroups: CgroupManager | None
    cpu_load: dict[int, float] = field(default_factory=dict)
    _pins: dict[str, LimitsPlan] = field(default_factory=dict)

    _instance: ClassVar[LocalHost | None] = None  # one per hub process
    _lock: ClassVar[asyncio.Lock | None] = None

    @classmethod
    async def get(cls, nvidia_smi: str = "nvidia-smi") -> LocalHost:
        """The host, detected on first call (GPUs, cgroups, cores)."""
        if cls._instance is not None:
            return cls._instance
        if cls._lock is None:
            cls._lock = asyncio.Lock()
        async with cls._lock:
            if cls._instance is None:
                cls._instance = await cls.detect(nvidia_smi)
        return cls._instance

    @classmethod
    async def detect(cls, nvidia_smi: str = "nvidia-smi") -> LocalHost:
        try:
            gpus = await detect_gpus(nvidia_smi)
        except ValueError as e:  # output we cannot read: offer no GPUs rather than fail
            log.error("Cannot read %s output (%s); offering no GPUs", nvidia_smi, e)
            gpus = []
        support = await asyncio.to_thread(detect_cgroups)
        cpus = tuple(sorted(os.sched_getaffinity(0)))
        log.info(
            "mlfactory local host: %d CPU cores, %d GPU(s), cgroups: %s",
            len(cpus),
            len(gpus),
            support.reason or f"v{support.version} cpu={support.cpu} memory={support.memory}",
        )
        return cls(
            allocator=GpuAllocator(gpus),
            # raw names: the matcher needs their word boundaries ("NVIDIA H100 80GB")
            gpu_types=frozenset(g.name for g in gpus),
            cgroup_support=support,
            cpus=cpus,
            cgroups=_manager(support),
            cpu_load={c: 0.0 for c in cpus},
        )

    @classmethod
    def forget(cls) -> None:
        """Drop the detected host (tests, or after hardware changes)."""
        cls._instance = None

    def capabilities(self) -> HostCapabilities:
        return HostCapabilities(gpu_count=len(self.allocator.gpus), gpu_types=self.gpu_types)

    def enforcement(self) -> Enforcement:
        # Pinning alone is no limit (a process may widen its own affinity): the cpu
        # cgroup's quota is. GPUs are handed out through CUDA_VISIBLE_DEVICES only.
        return Enforcement(cpu=self.cgroup_support.cpu, memory=self.cgroup_support.memory)

    def pin(self, key: str, plan: LimitsPlan) -> None:
        """Count ``plan``'s cores as busy, so the next server is pinned elsewhere."""
        self.unpin(key)
        share = len(plan.cpus) and plan.cpu_quota_us / plan.cpu_period_us / len(plan.cpus)
        for cpu in plan.cpus:
            self.cpu_load[cpu] = self.cpu_load.get(cpu, 0.0) + share
        self._pins[key] = plan

    def unpin(self, key: str) -> None:
        plan = self._pins.pop(key, None)
        if plan is None:
            return
        share = len(plan.cpus) and plan.cpu_quota_us / plan.cpu_period_us / len(plan.cpus)
        for cpu in plan.cpus:
            self.cpu_load[cpu] = max(0.0, self.cpu_load.get(cpu, 0.0) - share)


def _manager(support: CgroupSupport) -> CgroupManager | None:
    controllers = tuple(c for c in ("cpu", "memory") if getattr(support, c))
    return CgroupManager(controllers=controllers) if controllers else None
