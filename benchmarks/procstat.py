"""Processes as the benchmarks see them, from ``/proc``: CPU seconds, resident memory, a
hub's children, and a sampler of peak RSS and cores over a measured stretch."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int(d.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Procs:
    """The hub and what it started: the proxy and (mlfactory) the platform service."""

    hub: int
    others: dict[str, int] = field(default_factory=dict)

    @classmethod
    def find(cls, hub: int) -> Procs:
        p = cls(hub)
        for c in children(hub):
            line = cmdline(c)
            if "mlfactory.service" in line:
                p.others["service"] = c
            elif "configurable-http-proxy" in line or "node" in line:
                p.others["proxy"] = c
        return p

    def all(self) -> dict[str, int]:
        return {"hub": self.hub, **self.others}


class Sampler:
    """Peak RSS every 0.25 s and CPU seconds between start and stop, per process."""

    def __init__(self, procs: Procs) -> None:
        self.procs = procs.all()
        self.peak: dict[str, float] = dict.fromkeys(self.procs, 0.0)
        self.cpu0 = {k: cpu_seconds(p) for k, p in self.procs.items()}
        self.t0 = time.perf_counter()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            for k, p in self.procs.items():
                self.peak[k] = max(self.peak[k], rss_mib(p))
            await asyncio.sleep(0.25)

    def stop(self) -> dict[str, dict[str, float]]:
        self.task.cancel()
        wall = time.perf_counter() - self.t0
        return {
            k: {
                "cpu_s": cpu_seconds(p) - self.cpu0[k],
                "cores": (cpu_seconds(p) - self.cpu0[k]) / wall,
                "peak_rss_mib": max(self.peak[k], rss_mib(p)),
            }
            for k, p in self.procs.items()
        }
