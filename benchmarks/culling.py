"""One idle-shutdown pass over many running servers (default 5,000).

The hub is a stand-in serving the REST API the pass uses (``GET /users?state=ready`` in
pages, ``GET /groups``, ``DELETE`` a server), so what is measured is the pass itself:
jupyterhub-idle-culler's paginated walk with bounded concurrency, our arbiter (the pure
policy per server) and the database reads and writes around it. The anchor, in the same
run, is jupyterhub-idle-culler's own pass with its default arbiter on the same hub.

    .venv/bin/python benchmarks/culling.py --servers 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform as pyplatform
import socket
import statistics
import tempfile
import time
from datetime import UTC, datetime

import yaml
from jupyterhub_idle_culler import cull_idle
from mlfactory.hub.platform_config import PACKAGED_CONFIG, parse_platform_config
from mlfactory.hub.service.culler import Culler
from mlfactory.hub.service.db import make_engine, upgrade
from mlfactory.hub.service.hubapi import HubAPI
from tornado import web
from tornado.httpserver import HTTPServer

# The real clock: jupyterhub-idle-culler's own pass (the anchor) reads it.
NOW = float(int(time.time()))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def population(n: int) -> list[dict]:
    """``n`` users with one running server each: most active, some idle, some busy."""
    users = []
    for i in range(n):
        name = f"user{i:05d}"
        idle = i % 10 == 0  # one in ten has been idle for two hours
        started = NOW - 3 * 3600
        users.append(
            {
                "name": name,
                "admin": False,
                "groups": [f"team{i % 50}"],
                "servers": {
                    "": {
                        "name": "",
                        "ready": True,
                        "pending": None,
                        "url": f"/user/{name}/",
                        "started": iso(started),
                        "last_activity": iso(NOW - (7200 if idle else 60)),
                        "state": {"mlfactory": {"ledger": {
                            "key": f"k{i:015d}", "user": name, "price_per_hour": 0.2,
                            "profile": "cpu-medium", "project": "", "groups": [f"team{i % 50}"]}}},
                    }
                },
            }
        )  # fmt: skip
    return users


def hub_app(users: list[dict], deleted: list) -> web.Application:
    class Root(web.RequestHandler):
        def get(self):
            self.finish({"version": "6.1.1"})

    class Users(web.RequestHandler):
        def get(self):
            offset = int(self.get_argument("offset", "0"))
            limit = int(self.get_argument("limit", "200"))
            page = users[offset : offset + limit]
            nxt = None
            if offset + limit < len(users):
                url = f"{self.request.protocol}://{self.request.host}{self.request.path}"
                query = f"state=ready&offset={offset + limit}&limit={limit}"
                nxt = {"offset": offset + limit, "limit": limit, "url": f"{url}?{query}"}
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"items": page, "_pagination": {"next": nxt}}))

    class Groups(web.RequestHandler):
        def get(self):
            groups = [{"name": f"team{g}", "users": []} for g in range(50)]
            self.finish(json.dumps({"items": groups, "_pagination": {"next": None}}))

    class Server(web.RequestHandler):
        def delete(self, user, name=""):
            deleted.append(user)
            self.set_status(204)

    return web.Application(
        [
            (r"/hub/api/?", Root),
            (r"/hub/api/users", Users),
            (r"/hub/api/groups", Groups),
            (r"/hub/api/users/([^/]+)/server", Server),
            (r"/hub/api/users/([^/]+)/servers/([^/]*)", Server),
        ]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main(args) -> dict:
    logging.basicConfig(level=logging.ERROR)
    users = population(args.servers)
    deleted: list = []
    port = free_port()
    server = HTTPServer(hub_app(users, deleted))
    server.listen(port, "127.0.0.1")
    url = f"http://127.0.0.1:{port}/hub/api"
    data = yaml.safe_load(PACKAGED_CONFIG.read_text())
    data["culling"] = {"idle_timeout": "1h", "warn_before": "10m", "grace_after_restart": 0}
    cfg = parse_platform_config(data, "bench.yaml")
    results: dict = {"servers": args.servers, "page_size": args.page_size,
                     "concurrency": args.concurrency}  # fmt: skip
    log = logging.getLogger("bench")
    runs: dict[str, list[float]] = {}

    async def timed(name: str, coro) -> None:
        t0 = time.perf_counter()
        await coro
        runs.setdefault(name, []).append(round(time.perf_counter() - t0, 3))

    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:  # each round starts with no warnings
            engine = make_engine(f"sqlite:///{d}/platform.sqlite")
            upgrade(engine)
            now = [NOW]
            culler = Culler(engine, cfg, hub=HubAPI(url, "t", page_size=args.page_size),
                            hub_url=url, token="t", clock=lambda now=now: now[0],
                            page_size=args.page_size, concurrency=args.concurrency)  # fmt: skip
            culler.watching_since = NOW - 3600
            deleted.clear()
            await timed("mlfactory: pass that warns 10%", culler.run_pass())
            now[0] += 600
            await timed("mlfactory: pass that stops 10%", culler.run_pass())
            assert len(deleted) == args.servers // 10, len(deleted)
            engine.dispose()
        deleted.clear()
        await timed(
            "idle-culler default: pass that stops none",
            cull_idle(
                url,
                "t",
                inactive_limit=10**9,
                logger=log,
                concurrency=args.concurrency,
                api_page_size=args.page_size,
            ),
        )
        await timed(
            "idle-culler default: pass that stops 10%",
            cull_idle(
                url,
                "t",
                inactive_limit=3600,
                logger=log,
                concurrency=args.concurrency,
                api_page_size=args.page_size,
            ),
        )
        # fmt: skip
    results["seconds"] = runs
    med = {k: statistics.median(v) for k, v in runs.items()}
    results["ratio_stop_pass"] = round(
        med["mlfactory: pass that stops 10%"] / med["idle-culler default: pass that stops 10%"], 2
    )
    results["ratio_no_stop_pass"] = round(
        med["mlfactory: pass that warns 10%"] / med["idle-culler default: pass that stops none"], 2
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
