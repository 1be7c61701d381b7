"""One idle-shutdown pass over many running servers (default 5,000).

The hub is the tests' stand-in (``tests/fakehub.py``, checked against a real JupyterHub by
``tests/test_fakehub_fidelity.py``) serving the REST API the pass uses (``GET /users`` in
pages, ``GET /groups``, ``DELETE`` a server), so what is measured is the pass itself:
jupyterhub-idle-culler's paginated walk with bounded concurrency, our arbiter (the pure
policy per server) and the database reads and writes around it. The anchor, in the same
run, is jupyterhub-idle-culler's own pass with its default arbiter on the same hub; rounds
alternate which goes first. Each pass's wall and CPU seconds are printed (the stand-in hub
runs in this process, so CPU is the whole pass's work and the fair figure on a busy machine),
and how many requests the hub answered during it.

    .venv/bin/python benchmarks/culling.py --servers 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform as pyplatform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from jupyterhub_idle_culler import cull_idle
from mlfactory.hub.platform_config import PACKAGED_CONFIG, parse_platform_config
from mlfactory.service.culler import Culler
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.hubapi import HubAPI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fakehub import HubState, serve_fake_hub  # noqa: E402  (the tests' stand-in hub)

# The real clock: jupyterhub-idle-culler's own pass (the anchor) reads it.
NOW = float(int(time.time()))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def populate(hub: HubState, n: int) -> None:
    """The hub knows ``n`` users with one running server each: most active, some idle."""
    for known in (hub.users, hub.groups, hub.tokens, hub.stopped, hub.requests):
        known.clear()
    for i in range(n):
        name, team = f"user{i:05d}", f"team{i % 50}"
        idle = i % 10 == 0  # one in ten has been idle for two hours
        hub.add_user(name, groups=(team,))
        ledger = {"key": f"k{i:015d}", "user": name, "price_per_hour": 0.2,
                  "profile": "cpu-medium", "project": "", "groups": [team]}  # fmt: skip
        hub.run_server(name, "", ledger, iso(NOW - 3 * 3600), iso(NOW - (7200 if idle else 60)))


async def main(args) -> dict:
    logging.basicConfig(level=logging.ERROR)
    hub = HubState()  # "t" is one of the tokens it takes for the service's
    url, server = serve_fake_hub(hub)
    data = yaml.safe_load(PACKAGED_CONFIG.read_text())
    data["culling"] = {"idle_timeout": "1h", "warn_before": "10m", "grace_after_restart": 0}
    cfg = parse_platform_config(data, "bench.yaml")
    results: dict = {"servers": args.servers, "page_size": args.page_size,
                     "concurrency": args.concurrency}  # fmt: skip
    log = logging.getLogger("bench")
    runs: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    requests: dict[str, int] = {}

    async def timed(name: str, coro):
        # wall time is the figure; the process's CPU time (the stand-in hub runs in this
        # process too) is printed beside it, as it sees through a busy machine's waits
        t0, c0, n0 = time.perf_counter(), time.process_time(), len(hub.requests)
        result = await coro
        runs.setdefault(name, []).append(round(time.perf_counter() - t0, 3))
        cpu.setdefault(name, []).append(round(time.process_time() - c0, 3))
        requests[name] = len(hub.requests) - n0  # the same in every round
        return result

    async def ours() -> None:
        with tempfile.TemporaryDirectory() as d:  # each round starts with no warnings
            engine = make_engine(f"sqlite:///{d}/platform.sqlite")
            upgrade(engine)
            now = [NOW]
            culler = Culler(engine, cfg, hub=HubAPI(url, "t", page_size=args.page_size),
                            hub_url=url, token="t", clock=lambda now=now: now[0],
                            page_size=args.page_size, concurrency=args.concurrency)  # fmt: skip
            culler.watching_since = NOW - 3600
            populate(hub, args.servers)
            await timed("mlfactory: pass that warns 10%", culler.run_pass())
            now[0] += 600
            result = await timed("mlfactory: pass that stops 10%", culler.run_pass())
            assert len(hub.stopped) == args.servers // 10, len(hub.stopped)
            assert result["stopped"] == args.servers // 10, result  # and recorded
            engine.dispose()

    async def anchor() -> None:
        populate(hub, args.servers)
        for name, limit in (("stops none", 10**9), ("stops 10%", 3600)):
            await timed(
                f"idle-culler default: pass that {name}",
                cull_idle(url, "t", inactive_limit=limit, logger=log,
                          concurrency=args.concurrency, api_page_size=args.page_size),
            )  # fmt: skip
        assert len(hub.stopped) == args.servers // 10, len(hub.stopped)

    for i in range(args.repeat):
        # alternate which goes first, so neither always meets a warmer or a busier process
        for variant in (ours, anchor) if i % 2 == 0 else (anchor, ours):
            await variant()
    results["seconds"] = runs
    results["cpu_seconds"] = cpu
    results["hub_requests_per_pass"] = requests
    med = {k: statistics.median(v) for k, v in runs.items()}
    results["ratio_stop_pass"] = round(
        med["mlfactory: pass that stops 10%"] / med["idle-culler default: pass that stops 10%"], 2
    )
    results["ratio_no_stop_pass"] = round(
        med["mlfactory: pass that warns 10%"] / med["idle-culler default: pass that stops none"], 2
    )
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    results["cpu_ratio_stop_pass"] = round(
        cmed["mlfactory: pass that stops 10%"] / cmed["idle-culler default: pass that stops 10%"],
        2,
    )
    results["cpu_ratio_no_stop_pass"] = round(
        cmed["mlfactory: pass that warns 10%"] / cmed["idle-culler default: pass that stops none"],
        2,
    )
    server.stop()
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servers", type=int, default=5000)
    ap.add_argument("--page-size", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {pyplatform.platform()}, load {os.getloadavg()}")
    print(json.dumps(asyncio.run(main(a)), indent=1))
