"""How long the hub's ``add_route`` takes on each proxy (the part of a spawn, and of a hub
restart per running server, that the proxy costs): configurable-http-proxy, and Traefik as
mlfactory runs it (the API password hashed at bcrypt cost 4) next to the library's default
cost (12), each started the way the hub starts it, in one run.

    .venv/bin/python benchmarks/model_api/route_add.py --routes 20

jupyterhub-traefik-proxy writes the route to its file, then polls Traefik's API until
Traefik serves it; each poll is a basic-auth request whose bcrypt hash Traefik checks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import bcrypt
from jupyterhub.proxy import ConfigurableHTTPProxy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_http import free_port  # noqa: E402


def make_proxy(kind: str, folder: Path):
    public = f"http://127.0.0.1:{free_port()}"
    if kind == "chp":
        from mlfactory.hub.hubconfig import find_proxy_command

        return ConfigurableHTTPProxy(
            public_url=public,
            api_url=f"http://127.0.0.1:{free_port()}",
            auth_token=secrets.token_hex(16),
            command=[find_proxy_command()],
            pid_file=str(folder / "chp.pid"),
            log_level="warn",
            # what CHP's start reads of the hub: its error page and the app's TLS settings
            hub=SimpleNamespace(url=f"http://127.0.0.1:{free_port()}/hub/"),
            app=SimpleNamespace(subdomain_host="", internal_ssl=False),
            should_start=True,
        )
    from mlfactory.hub.proxy import find_traefik, traefik_files, traefik_static_config
    from mlfactory.hub.traefik_proxy import MLFactoryTraefikProxy

    files = traefik_files(folder)
    password = secrets.token_urlsafe(32)
    extra = {}
    if kind == "traefik (bcrypt cost 12)":
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(12)).decode()
        extra["traefik_api_hashed_password"] = hashed
    return MLFactoryTraefikProxy(
        public_url=public,
        traefik_api_url=f"http://127.0.0.1:{free_port()}",
        traefik_api_username="jupyterhub",
        traefik_api_password=password,
        static_config_file=str(files.static),
        dynamic_config_file=str(files.dynamic),
        pid_file=str(files.pid),
        traefik_binary=find_traefik(),
        extra_static_config=traefik_static_config(),
        should_start=True,
        **extra,
    )


async def measure(kind: str, routes: int) -> list[float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-route-add-"))
    proxy = make_proxy(kind, folder)
    proxy.log.setLevel(logging.WARNING)
    await proxy.start()
    try:
        times = []
        for i in range(routes):
            t0 = time.perf_counter()
            await proxy.add_route(f"/user/u{i}/", f"http://127.0.0.1:{free_port()}", {"user": "u"})
            times.append(time.perf_counter() - t0)
        for i in range(routes):
            await proxy.delete_route(f"/user/u{i}/")
        return times
    finally:
        await proxy.stop() if kind != "chp" else proxy.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--routes", type=int, default=20)
    args = p.parse_args()
    print("| proxy | routes | min s | median s | max s |\n|---|---|---|---|---|")
    for kind in ("chp", "traefik (mlfactory: bcrypt cost 4)", "traefik (bcrypt cost 12)"):
        xs = asyncio.run(measure(kind, args.routes))
        print(
            f"| {kind} | {len(xs)} | {min(xs):.3f} | {statistics.median(xs):.3f} | {max(xs):.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
