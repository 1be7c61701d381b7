"""What this machine offers to local servers, shared by every spawner in the hub process.

GPUs (detected once with nvidia-smi, handed out so no device serves two servers), the
cgroups this host lets us write, and which CPU cores are already pinned. The detection
is I/O and runs once, on first use; the decisions live in the pure modules it calls.

A spawner takes what its server needs with ``hold`` and gives it back with ``release``;
after a hub restart, ``restore`` takes back what the spawner's saved state says it held.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from .cgroups import CgroupManager, CgroupSupport, detect_cgroups, make_preexec
from .form import Enforcement
from .gpus import GpuAllocator, detect_gpus
from .limits import LimitsPlan, plan_limits
from .profiles import HostCapabilities, ResourceRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holding:
    """What one server holds on this host; the spawner keeps it (and saves it in its state)."""

    key: str  # the server's name on this host (its slug when it started)
    gpus: tuple[str, ...] = ()  # GPU uuids: its CUDA_VISIBLE_DEVICES
    cpus: tuple[int, ...] = ()  # cores it is pinned to (none after a hub restart)
    cgroup: bool = False  # it has a cgroup, removed on release
    procs_files: tuple[Path, ...] = ()  # the cgroup.procs files its process joins

    def preexec(self, then: Callable[[], None] | None = None) -> Callable[[], None]:
        """What Popen runs in the child: join the cgroup, pin the cores, then ``then``."""
        return make_preexec(self.procs_files, self.cpus, then)

    def state(self) -> dict[str, Any]:
        """For the spawner's state: enough to ``restore`` and release after a hub restart."""
        flags = {"pinned": bool(self.cpus), "cgroup": self.cgroup}
        return {
            "key": self.key,
            "gpus": list(self.gpus),
            **{k: True for k, v in flags.items() if v},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], key: str) -> Holding | None:
        """The holding saved by ``state()`` (None if nothing was held); ``key`` when it has
        none. Core pins are load bookkeeping, not restored."""
        gpus, cgroup = tuple(state.get("gpus") or ()), bool(state.get("cgroup"))
        if not (state.get("key") or gpus or cgroup):
            return None
        return cls(key=state.get("key") or key, gpus=gpus, cgroup=cgroup)


@dataclass
class LocalHost:
    allocator: GpuAllocator
    gpu_types: frozenset[str]
    cgroup_support: CgroupSupport
    cpus: tuple[int, ...]
    cgroups: CgroupManager | None
    cpu_load: dict[int, float] = field(default_factory=dict)
    _pins: dict[str, LimitsPlan] = field(default_factory=dict)
    _holdings: dict[str, Holding] = field(default_factory=dict)

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

    async def hold(self, key: str, request: ResourceRequest) -> Holding:
        """Take what server ``key`` needs for ``request``: its GPUs, the least-loaded cores
        (pinned and counted), and a cgroup with its limits where this host has them.

        Raises NoGpuAvailable (its message is for the user), or OSError when the cgroup
        cannot be made; what was taken by then is given back.
        """
        gpus = ()
        try:
            if request.gpu:
                gpus = self.allocator.allocate(key, request.gpu, request.gpu_type)
            plan = plan_limits(
                cpu_limit=request.cpu_limit,
                cpu_guarantee=request.cpu_guarantee,
                mem_limit=request.mem_limit,
                mem_guarantee=request.mem_guarantee,
                host_cpus=self.cpus,
                cpu_load=self.cpu_load,
            )
            self.pin(key, plan)
            procs_files = await self.cgroups.create(key, plan) if self.cgroups else []
        except BaseException:
            self.allocator.release(key)
            self.unpin(key)
            raise
        holding = Holding(
            key=key,
            gpus=gpus,
            cpus=plan.cpus,
            cgroup=self.cgroups is not None,
            procs_files=tuple(procs_files),
        )
        self._holdings[key] = holding
        return holding

    def restore(self, holding: Holding) -> tuple[str, ...]:
        """Take back what a server held before the hub restarted (its spawner's saved
        ``holding``), so no other server gets its GPUs and ``release`` frees them. Returns
        the GPUs dropped: gone from this host, or held by another server."""
        dropped = self.allocator.restore(holding.key, holding.gpus)
        kept = tuple(u for u in holding.gpus if u not in dropped)
        self._holdings[holding.key] = replace(holding, gpus=kept, cpus=())
        return dropped

    async def release(self, key: str) -> None:
        """Give back what server ``key`` holds (nothing if it holds nothing). The cgroup goes
        first: its removal kills what is left of the server, and only then are its GPUs
        free. Raises OSError when the cgroup is still busy; all stays held for a retry."""
        holding = self._holdings.get(key)
        if holding is None:
            return
        if holding.cgroup and self.cgroups is not None:
            await self.cgroups.remove(key)
        self.allocator.release(key)
        self.unpin(key)
        self._holdings.pop(key, None)

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
