"""The platform service's resident memory, started as the hub starts it (issue 20).

The storm (``storm.py``) measures hub + service against a vanilla hub under a thousand
spawns; this looks at the service alone, quickly, to see where its share goes. Each round
starts, one after the other:

* **service**: ``python -m mlfactory.service`` with the environment a hub gives its managed
  service (``JUPYTERHUB_*``, ``MLFACTORY_SERVICE_SECRET``, ``MLFACTORY_DATA``), the shipped
  platform config, against the tests' stand-in hub (``tests/fakehub.py``). RSS from
  ``/proc`` once it answers and has run its first tick, then after each of ``--bursts``
  bursts of ``--gates`` budget-gate calls all in flight at once (each a new session);
* **anchor**: the smallest JupyterHub service in Python, JupyterHub's own
  ``HubOAuth`` behind one tornado handler (what ``jupyterhub/examples/service-whoami-oauth``
  runs): the floor under any hub-managed service that logs users in with the hub.

    .venv/bin/python benchmarks/service_memory.py --rounds 3
    .venv/bin/python benchmarks/service_memory.py --rounds 1 --gates 200 --bursts 1   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as pyplatform
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from procstat import rss_mib  # noqa: E402

from tests.fakehub import HubState, serve_fake_hub  # noqa: E402  (the tests' stand-in hub)
from tests.ports import free_port  # noqa: E402

PREFIX = "/services/mlfactory/"

ANCHOR = textwrap.dedent(
    """
    import os
    from urllib.parse import urlparse
    from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
    from tornado import ioloop, web

    class WhoAmI(HubOAuthenticated, web.RequestHandler):
        @web.authenticated
        def get(self):
            self.write(self.get_current_user())

    class Ping(web.RequestHandler):
        def get(self):
            self.write("ok")

    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    app = web.Application(
        [(prefix, WhoAmI), (prefix + "oauth_callback", HubOAuthCallbackHandler),
         (prefix + "ping", Ping)],
        cookie_secret=os.urandom(32), hub_auth=HubOAuth.instance(),
    )
    app.listen(urlparse(os.environ["JUPYTERHUB_SERVICE_URL"]).port, "127.0.0.1")
    ioloop.IOLoop.current().start()
    """
)


def hub_env(api_url: str, token: str, port: int, data: Path) -> dict[str, str]:
    """What JupyterHub (and mlfactory's hub config) put in a managed service's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "MLFACTORY_"))}
    env.update(
        JUPYTERHUB_API_URL=api_url,
        JUPYTERHUB_API_TOKEN=token,
        JUPYTERHUB_SERVICE_NAME="mlfactory",
        JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}",
        JUPYTERHUB_SERVICE_PREFIX=PREFIX,
        JUPYTERHUB_CLIENT_ID="service-mlfactory",
        JUPYTERHUB_OAUTH_CALLBACK_URL=f"{PREFIX}oauth_callback",
        JUPYTERHUB_HOST="",
        JUPYTERHUB_BASE_URL="/",
        MLFACTORY_SERVICE_SECRET=secrets.token_urlsafe(32),
        MLFACTORY_DATA=str(data),
    )
    return env


async def wait_answering(client: AsyncHTTPClient, url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120  # a busy 2-core machine: generous
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the process exited ({proc.returncode}) before answering")
        try:
            r = await client.fetch(url, raise_error=False, request_timeout=5)
            if r.code != 599:
                return
        except OSError:  # not listening yet
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in 120 s")


async def gate_burst(client: AsyncHTTPClient, base: str, secret: str, first: int, n: int) -> int:
    """``n`` gate calls at once, each a new session of its own user; how many got 200."""

    async def one(i: int) -> int:
        body = {
            "key": f"memory-{i:06d}-session",
            "user": f"u{i % n:05d}",
            "server_name": "",
            "project": "",
            "profile": "cpu-small",
            "price_per_hour": 0.5,
            "groups": [],
        }
        req = HTTPRequest(
            f"{base}api/gate",
            method="POST",
            body=json.dumps(body),
            headers={"Authorization": f"secret {secret}"},
            request_timeout=300,
        )
        return (await client.fetch(req, raise_error=False)).code

    codes = await asyncio.gather(*(one(first + i) for i in range(n)))
    return sum(c == 200 for c in codes)


def start(kind: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The service as the hub's config starts it (``hubconfig.apply_platform_service``),
    or the anchor; output to ``log``."""
    command = (
        [sys.executable, "-m", "mlfactory.service"]
        if kind == "service"
        else [sys.executable, "-c", ANCHOR]
    )
    with open(log, "w") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


async def measure(kind: str, gates: int, bursts: int, workdir: Path) -> dict[str, float]:
    state = HubState()
    token = secrets.token_hex(16)
    state.service_tokens.add(token)
    for i in range(gates):
        state.users[f"u{i:05d}"] = {"name": f"u{i:05d}", "groups": [], "servers": {}}
    api_url, hub = serve_fake_hub(state)
    port = free_port()
    data = Path(tempfile.mkdtemp(dir=workdir))
    env = hub_env(api_url, token, port, data)
    proc = start(kind, env, data / "log")
    client = AsyncHTTPClient(force_instance=True, max_clients=max(gates, 10))
    base = f"http://127.0.0.1:{port}{PREFIX}"
    out: dict[str, float] = {}
    try:
        await wait_answering(client, base + ("openapi.yaml" if kind == "service" else "ping"), proc)
        await asyncio.sleep(3)  # the first accounting tick runs at start; let it finish
        out["idle_mib"] = rss_mib(proc.pid)
        if kind == "service":
            for b in range(bursts):
                secret = env["MLFACTORY_SERVICE_SECRET"]
                ok = await gate_burst(client, base, secret, b * gates, gates)
                if ok != gates:
                    raise RuntimeError(f"{gates - ok} of {gates} gate calls failed: see {data}/log")
                out[f"after_burst_{b + 1}_mib"] = rss_mib(proc.pid)
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)
        hub.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds, alternating the order")
    ap.add_argument("--gates", type=int, default=1000, help="gate calls per burst")
    ap.add_argument("--bursts", type=int, default=2)
    args = ap.parse_args()
    print(
        f"{pyplatform.machine()}, {os.cpu_count()} cores, Python {pyplatform.python_version()}, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {"service": [], "anchor": []}
    with tempfile.TemporaryDirectory(prefix="service-memory-") as tmp:
        for r in range(args.rounds):
            order = ("service", "anchor") if r % 2 == 0 else ("anchor", "service")
            for kind in order:
                figures = asyncio.run(measure(kind, args.gates, args.bursts, Path(tmp)))
                results[kind].append(figures)
                shown = ", ".join(f"{k} {v:.1f}" for k, v in figures.items())
                print(f"round {r} {kind}: {shown}", flush=True)
    print(f"\n{'figure (MiB, min / median / max)':<34}{'service':>26}{'anchor':>26}")
    keys = list(results["service"][0])
    for key in keys:
        cells = []
        for kind in ("service", "anchor"):
            values = [f[key] for f in results[kind] if key in f]
            cells.append(
                f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"
                if values
                else "—"
            )
        print(f"{key:<34}{cells[0]:>26}{cells[1]:>26}")


if __name__ == "__main__":
    main()
