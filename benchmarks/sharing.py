"""Notebook shares: creating a share of a 5 MB notebook with images, rendering its preview,
and listing "Shared with me" at 1,000 shares.

Runs the platform service's real tornado app in-process (HubOAuth against the stand-in hub of
``tests/fakehub.py``, with the service's own 2 s token cache), on SQLite by default or on a
throw-away PostgreSQL (``--postgres``), and measures over HTTP:

* create: ``POST /api/shares`` with a ~5 MB notebook (40 PNG figures), each a new share;
* preview: the first ``GET /shares/<id>/preview`` of each (nbconvert render + cache), then
  the cached one;
* render alone (in-process, the same notebook): ``previews.render`` with this worker thread's
  exporter, against the anchor of a fresh ``HTMLExporter`` per render (what it did before),
  alternating, ``--renders`` of each;
* "Shared with me": ``GET /api/shares/received`` for a user who receives 1,000 shares (half by
  name, half through two groups) among 5,000, p50/p99 over ``--requests`` calls.

Targets (issue 16): create ≤ 1 s and preview ≤ 1 s for the 5 MB notebook; the list's
p99 ≤ 50 ms.

    .venv/bin/python benchmarks/sharing.py --shares 5 --requests 300 [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform as pyplatform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from jupyterhub.services.auth import HubOAuth
from mlfactory.hub.platform_config import PACKAGED_CONFIG, load_platform_config
from mlfactory.service import previews
from mlfactory.service.accounting import Accountant
from mlfactory.service.app import AUTH_CACHE_SECONDS, make_app
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.hubapi import HubAPI
from mlfactory.service.share_store import ShareStore
from mlfactory.service.shares import check_create
from mlfactory.service.store import Store
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fakehub import HubState, serve_fake_hub  # noqa: E402  (no pytest in there)
from tests.pg import PostgresCluster  # noqa: E402

PREFIX = "/services/mlfactory/"


def big_notebook(target_bytes: int = 4_900_000, seed: int = 16) -> dict:
    """~``target_bytes`` of notebook: markdown, code and a PNG figure per cell (random bytes
    stand in for a plot: they do not compress, as real PNGs barely do)."""
    rnd = random.Random(seed)
    png = base64.b64encode(rnd.randbytes(90_000)).decode()
    nb = new_notebook()
    i = 0
    while len(nbformat.writes(nb)) < target_bytes - 130_000:
        nb.cells.append(new_markdown_cell(f"## Figure {i}\nLoss by *epoch*, run {i}."))
        nb.cells.append(
            new_code_cell(
                f"fig = plot_run({i})\nfig",
                execution_count=i + 1,
                outputs=[
                    new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
                    new_output("stream", name="stdout", text=f"run {i}: loss 0.{i:03d}\n"),
                ],
            )
        )
        i += 1
    return json.loads(nbformat.writes(nb))


def render_fresh(text: str, name: str) -> str:
    """The anchor: a render as it was before, building (and compiling) an exporter each time."""
    nb = nbformat.reads(text, as_version=4)
    exporter = HTMLExporter(
        template_name="lab",
        template_file=previews._TEMPLATE,  # noqa: SLF001
        extra_loaders=[DictLoader({previews._TEMPLATE: previews._OFFLINE})],  # noqa: SLF001
    )
    return exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})[0]


def time_renders(nb: dict, rounds: int) -> dict[str, list[float]]:
    """Render-only timings, now (this thread's exporter) and the anchor, alternating."""
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False)
    previews.render(text, "warm.ipynb")  # imports and this thread's exporter
    out: dict[str, list[float]] = {"render_now": [], "render_anchor": []}
    for _ in range(rounds):
        for key, fn in (("render_now", previews.render), ("render_anchor", render_fresh)):
            t0 = time.perf_counter()
            fn(text, "big.ipynb")
            out[key].append(time.perf_counter() - t0)
    return out


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


async def call(url: str, token: str, method: str = "GET", body: object = None) -> tuple[int, bytes]:
    req = HTTPRequest(
        url,
        method=method,
        headers={"Authorization": f"token {token}"},
        body=None if body is None else json.dumps(body),
        request_timeout=120,
    )
    resp = await AsyncHTTPClient(max_body_size=512 * 2**20).fetch(req, raise_error=False)
    return resp.code, resp.body


def seed_shares(store: ShareStore, total: int, for_alice: int) -> None:
    """``total`` small shares by 50 owners; ``for_alice`` of them reach alice (half by name,
    half through her groups), the rest go to others."""
    rnd = random.Random(7)
    tiny = json.loads(nbformat.writes(new_notebook(cells=[new_code_cell("1 + 1")])))
    chosen = set(rnd.sample(range(total), for_alice))
    for i in range(total):
        owner = f"owner{i % 50}"
        if i in chosen:
            to = {"users": ["alice"]} if i % 2 else {"groups": [rnd.choice(["ds", "ml"])]}
        else:
            to = {"users": [f"user{rnd.randrange(500)}"], "groups": [f"team{rnd.randrange(40)}"]}
        body = {"path": f"work/n{i}.ipynb", "notebook": tiny, "message": f"share {i}", **to}
        req = check_create(body, owner=owner, now=store.clock(), max_bytes=10**7, max_recipients=9)
        store._create(owner, req)  # noqa: SLF001 (seeding, synchronously, skipping the hub check)


async def run(url: str, args: argparse.Namespace, workdir: Path) -> dict:
    engine = make_engine(url)
    upgrade(engine)
    state = HubState()
    alice = state.add_user("alice", groups=("ds", "ml"))
    bob = state.add_user("bob")
    hub_url, hub_server = serve_fake_hub(state)
    platform = load_platform_config(PACKAGED_CONFIG)
    accountant = Accountant(Store(engine), platform, hub=HubAPI(hub_url, "service-token"))
    hub_auth = HubOAuth(
        api_url=hub_url,
        api_token="service-token",  # noqa: S106 (the stand-in hub's)
        base_url=PREFIX,
        hub_prefix="/hub/",
        oauth_client_id="service-mlfactory",
        cache_max_age=AUTH_CACHE_SECONDS,
    )
    app = make_app(accountant, hub_auth, prefix=PREFIX, shares_dir=str(workdir / "shares"))
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app, max_body_size=512 * 2**20)
    server.add_sockets(sockets)
    base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}{PREFIX.rstrip('/')}"
    out: dict = {"backend": engine.dialect.name}
    try:
        nb = big_notebook()
        out["notebook_bytes"] = len(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False))
        await call(f"{base}/api/shares/received", bob)  # warm the connection and auth cache
        creates, renders, cached, ids = [], [], [], []
        for i in range(args.shares):
            body = {"path": f"reports/big{i}.ipynb", "notebook": nb, "users": ["bob"]}
            t0 = time.perf_counter()
            code, resp = await call(f"{base}/api/shares", alice, "POST", body)
            creates.append(time.perf_counter() - t0)
            assert code == 201, resp[:300]
            ids.append(json.loads(resp)["share"]["id"])
        for sid in ids:
            t0 = time.perf_counter()
            code, resp = await call(f"{base}/shares/{sid}/preview", bob)
            renders.append(time.perf_counter() - t0)
            assert code == 200, resp[:300]
            t0 = time.perf_counter()
            code, _ = await call(f"{base}/shares/{sid}/preview", bob)
            cached.append(time.perf_counter() - t0)
        out["create"] = creates
        out["preview_first"] = renders
        out["preview_cached"] = cached
        out.update(await asyncio.to_thread(time_renders, nb, args.renders))

        store = app.settings["shares"]
        t0 = time.perf_counter()
        await asyncio.to_thread(seed_shares, store, args.total, args.received)
        out["seed_s"] = time.perf_counter() - t0
        code, resp = await call(f"{base}/api/shares/received", alice)
        n = len(json.loads(resp)["shares"])
        assert code == 200 and n == args.received, (code, n)
        lists = []
        cpu0 = time.process_time()  # this process: the service and the client, both
        for _ in range(args.requests):
            t0 = time.perf_counter()
            code, resp = await call(f"{base}/api/shares/received", alice)
            lists.append(time.perf_counter() - t0)
        out["received"] = lists
        out["received_cpu"] = (time.process_time() - cpu0) / args.requests
        out["received_bytes"] = len(resp)
    finally:
        server.stop()
        hub_server.stop()
        engine.dispose()
    return out


def report(r: dict) -> None:
    print(f"\n== {r['backend']} ==")
    print(f"notebook: {r['notebook_bytes']:,} bytes")
    for key, label in (
        ("create", "create share (POST /api/shares)"),
        ("preview_first", "preview, first view (render)"),
        ("preview_cached", "preview, cached"),
        ("render_now", "render alone, per-thread exporter"),
        ("render_anchor", "render alone, fresh exporter"),
    ):
        s = r[key]
        print(f"{label:34s} median {ms(statistics.median(s))}  max {ms(max(s))}  (n={len(s)})")
    s = r["received"]
    print(
        f"{'shared with me, 1,000 shares':34s} p50 {ms(pct(s, 50))}  p99 {ms(pct(s, 99))}  "
        f"(n={len(s)}, {r['received_bytes']:,} bytes; seeding took {r['seed_s']:.1f} s)"
    )
    # CPU time per call (server and client in this process): what a call costs on a free
    # core, whatever else loads the machine
    print(f"{'  CPU per list call':34s} {ms(r['received_cpu'])}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shares", type=int, default=5, help="5 MB shares created and rendered")
    p.add_argument("--total", type=int, default=5000, help="shares in the database")
    p.add_argument("--received", type=int, default=1000, help="of them, shared with the user")
    p.add_argument("--requests", type=int, default=300, help="'Shared with me' calls timed")
    p.add_argument("--renders", type=int, default=3, help="render-only timings of each kind")
    p.add_argument("--postgres", action="store_true", help="also on a throw-away PostgreSQL")
    return p.parse_args()


async def main(args: argparse.Namespace) -> None:
    print(f"python {pyplatform.python_version()} on {pyplatform.platform()}, {os.cpu_count()} CPUs")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="mlfactory-share-bench-") as tmp:
        work = Path(tmp)
        report(await run(f"sqlite:///{work / 'platform.sqlite'}", args, work / "sqlite"))
        if args.postgres:
            cluster = PostgresCluster()
            cluster.start()
            try:
                url = cluster.create_database("share_bench")
                report(await run(url, args, work / "pg"))
            finally:
                cluster.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
