"""The limits this server process actually runs under, read from the kernel.

The sidebar shows them, so a user sees what was enforced rather than what was
asked for. Reads ``/proc/self`` and the cgroup files; the parsing is pure.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` → {controller: path}; cgroup v2's line is keyed ``""``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            out[controller] = path
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def memory_limit(paths: dict[str, str], root: Path = CGROUP_ROOT) -> int | None:
    """The memory cgroup's limit in bytes, or None when unlimited or unknown."""
    if "memory" in paths:  # v1
        raw = _read(root / "memory" / paths["memory"].lstrip("/") / "memory.limit_in_bytes")
        # v1 reports "unlimited" as a huge page-aligned number
        return int(raw) if raw and raw.isdigit() and int(raw) < 2**62 else None
    if "" in paths:  # v2
        raw = _read(root / paths[""].lstrip("/") / "memory.max")
        return int(raw) if raw and raw.isdigit() else None
    return None


def cpu_quota(paths: dict[str, str], root: Path = CGROUP_ROOT) -> float | None:
    """The cpu cgroup's quota in cores, or None when unlimited or unknown."""
    if "cpu" in paths:  # v1
        base = root / "cpu" / paths["cpu"].lstrip("/")
        quota, period = _read(base / "cpu.cfs_quota_us"), _read(base / "cpu.cfs_period_us")
        if quota and period and quota.lstrip("-").isdigit() and int(quota) > 0:
            return int(quota) / int(period)
        return None
    if "" in paths:  # v2: "max 100000" or "50000 100000"
        raw = _read(root / paths[""].lstrip("/") / "cpu.max")
        if raw:
            quota, _, period = raw.partition(" ")
            if quota.isdigit() and period.isdigit():
                return int(quota) / int(period)
    return None


def current_limits(root: Path = CGROUP_ROOT) -> dict:
    """What the kernel enforces on this process right now."""
    paths = parse_proc_cgroup(_read(Path("/proc/self/cgroup")) or "")
    return {
        "cpus": sorted(os.sched_getaffinity(0)),
        "cpu_quota": cpu_quota(paths, root),
        "memory_limit": memory_limit(paths, root),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def usable_cpus(paths: dict[str, str] | None = None, root: Path = CGROUP_ROOT) -> float:
    """How many CPUs this process can keep busy at once: its affinity, capped by its cgroup's
    quota (a pod's or container's CPU limit, which ``os.cpu_count()`` does not see)."""
    if paths is None:
        paths = parse_proc_cgroup(_read(Path("/proc/self/cgroup")) or "")
    cpus = len(os.sched_getaffinity(0))
    quota = cpu_quota(paths, root)
    return min(cpus, quota) if quota else cpus
