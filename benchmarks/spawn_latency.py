"""Spawn latency: request → server ready, mlfactory's local spawner vs vanilla JupyterHub.

Starts two real hubs (real configurable-http-proxy) side by side, one with
JupyterHub's SimpleLocalProcessSpawner and one with MLFactoryLocalSpawner, both
starting the same JupyterLab single-user server, and alternates spawns between
them so that machine noise hits both alike. A spawn is timed from the REST
request (POST /hub/api/users/<u>/server) to the moment the hub reports the server
ready; the server is then stopped. Prints medians, ranges and the ratio.

    .venv/bin/python benchmarks/spawn_latency.py --spawns 20
"""

from __future__ import annotations

import argparse
import os
import platform
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchhub  # benchmarks/benchhub.py: the script's folder is on sys.path

HUB_CONFIG = (
    benchhub.HUB_CONFIG
    + """
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
"""
)

VARIANTS = {
    "vanilla": """
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]  # jupyterhub-singleuser
c.SimpleLocalProcessSpawner.home_dir_template = "{data}/home/{{username}}"
c.Spawner.args = {root_args!r}
""",
    "mlfactory": """
c.JupyterHub.spawner_class = "mlfactory-local"
c.MLFactoryLocalSpawner.workspace_root = "{data}/workspaces"
c.MLFactoryLocalSpawner.log_root = "{data}/logs"
""",  # default user_accounts: as root, each server under its own OS account, in cgroups
}


class Hub(benchhub.BenchHub):
    def __init__(self, variant: str, workdir: Path) -> None:
        super().__init__(variant, workdir)
        self.data.chmod(0o711)
        fields = {
            **self.fields(),
            "python": sys.executable,
            "root_args": ["--allow-root"] if os.geteuid() == 0 else [],
        }
        self.start((HUB_CONFIG + VARIANTS[variant]).format(**fields))

    def spawn_once(self, user: str) -> float:
        """Seconds from the spawn request until the hub says the server is ready."""
        t0 = time.perf_counter()
        status, body = self.api("POST", f"/users/{user}/server")
        if status not in (201, 202):
            raise RuntimeError(f"{self.variant}: spawn answered {status}: {body}")
        while status == 202:
            _, info = self.api("GET", f"/users/{user}")
            server = info.get("servers", {}).get("", {})
            if server.get("ready"):
                break
            if not server.get("pending") and not server.get("ready"):
                raise RuntimeError(f"{self.variant}: spawn failed; see {self.data}")
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        self.api("DELETE", f"/users/{user}/server")
        while self.api("GET", f"/users/{user}")[1].get("servers"):
            time.sleep(0.05)
        return elapsed


class _BenchUser:
    """The User attributes the spawner reads when rendering its form outside a hub."""

    name = "bench-user"
    url = "/user/bench-user/"
    escaped_name = name
    groups: list = []
    admin = False


def picker_overhead_ms(iterations: int = 200) -> tuple[float, float]:
    """Mean milliseconds to render the resource picker and to resolve a request."""
    import asyncio

    from mlfactory.spawner.local import MLFactoryLocalSpawner

    spawner = MLFactoryLocalSpawner(user=_BenchUser(), user_accounts="none")
    spawner.user_options = {"profile": "cpu-large", "cpu": 2, "memory": "8Gi"}

    async def run() -> tuple[float, float]:
        await spawner._render_options_form()  # warm: host detection, config parse
        t0 = time.perf_counter()
        for _ in range(iterations):
            await spawner._render_options_form()
        t1 = time.perf_counter()
        for _ in range(iterations):
            await spawner._resolve()
        t2 = time.perf_counter()
        return (t1 - t0) / iterations * 1000, (t2 - t1) / iterations * 1000

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=20, help="spawns per variant (>= 20)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed spawns per variant")
    parser.add_argument("--keep", action="store_true", help="keep the hubs' logs and state")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="mlf-bench-")
    os.chmod(tmp, 0o711)  # noqa: S103 - OS accounts (as root) must reach their homes
    print(f"hub logs: {tmp}/<variant>/hub.log", flush=True)
    try:
        hubs = {name: Hub(name, Path(tmp)) for name in VARIANTS}
        try:
            for hub in hubs.values():
                hub.wait_up()
                hub.api("POST", "/users/bench-user")
            for hub in hubs.values():
                for _ in range(args.warmup):
                    hub.spawn_once("bench-user")
            times: dict[str, list[float]] = {name: [] for name in hubs}
            for i in range(args.spawns):
                order = list(hubs) if i % 2 == 0 else list(reversed(hubs))
                for name in order:
                    times[name].append(hubs[name].spawn_once("bench-user"))
        finally:
            for hub in hubs.values():
                hub.stop()
    finally:
        for account in pwd.getpwall():  # accounts the mlfactory hub made, homed in tmp
            if account.pw_dir.startswith(f"{tmp}/"):
                subprocess.run(["userdel", account.pw_name], check=False)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    for name, ts in times.items():
        print(
            f"{name:10s} n={len(ts)} median {statistics.median(ts):.3f}s "
            f"min {min(ts):.3f}s max {max(ts):.3f}s"
        )
    ratio = statistics.median(times["mlfactory"]) / statistics.median(times["vanilla"])
    print(f"ratio of medians mlfactory/vanilla: {ratio:.2f} (target <= 0.80)")
    # The picker is rendered on the spawn page and the request resolved before start()
    # (the resolve is inside the mlfactory spawns timed above too).
    render_ms, resolve_ms = picker_overhead_ms()
    share = (render_ms + resolve_ms) / 1000 / statistics.median(times["vanilla"]) * 100
    print(
        f"picker render {render_ms:.2f} ms + request resolve {resolve_ms:.3f} ms = "
        f"{share:.2f}% of vanilla's median spawn (target < 5%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
