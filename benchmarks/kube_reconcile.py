"""A ledger reconcile pass on Kubernetes (issue 19): the platform service's
``Accountant.reconcile`` against a real JupyterHub with 10,000 users (``jupyterhub -f``, the
real proxy, no server processes, the service's paged ``/users`` reads) and 10,000
mlfactory-labelled pods listed through kubernetes_asyncio in pages of 500.

No cluster runs here: the pods are served by the tests' stand-in API server
(tests/kubernetes/kube_api.py), a small local HTTP server speaking the Kubernetes list
API's paging (``limit``/``continue``). The pods are the builder's own manifests.

    .venv/bin/python benchmarks/kube_reconcile.py [--users 10000] [--pods 10000]

Target (the issue's anchor): at most 5 s per pass. The first pass opens a session for every
pod the hub does not know (all of them: they are billed), the second confirms them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import benchhub  # noqa: E402
from mlfactory.service.accounting import Accountant  # noqa: E402
from mlfactory.service.db import make_engine, upgrade  # noqa: E402
from mlfactory.service.hubapi import HubAPI  # noqa: E402
from mlfactory.service.store import Store  # noqa: E402
from mlfactory.spawner.journal import new_ledger  # noqa: E402
from mlfactory.spawner.kube_pods import KubePodView  # noqa: E402
from mlfactory.spawner.kube_spec import kube_settings, manifests  # noqa: E402

from tests.kubernetes.cases import DIGEST, kube_platform, rows  # noqa: E402
from tests.kubernetes.kube_api import kube_api  # noqa: E402

INSTANCE = "0123456789abcdef"
CONFIG = (
    benchhub.HUB_CONFIG
    + """
c.JupyterHub.spawner_class = "simple"  # no server is started: the pods stand for them
c.JupyterHub.load_roles[0]["scopes"] += ["list:users", "read:users", "read:servers",
    "read:users:groups", "list:groups", "read:groups"]
# the users exist from the start (created by the hub at start-up, in one transaction):
# 10,000 REST creations take minutes on a loaded machine and are not what is measured
c.Authenticator.allowed_users = {{f"u{{i:05d}}" for i in range({users})}}
"""
)


def make_pods(n: int, users: list[str]) -> list[dict]:
    config = kube_platform()
    table = list(rows(config))
    rng = random.Random(19)
    pods = []
    for i in range(n):
        user, row = users[i % len(users)], rng.choice(table)
        server = "" if i < len(users) else f"s{i}"
        ledger = new_ledger(user, server, ["ml-engineering"], row.request)
        ledger["started"] = time.time() - 3600
        settings = kube_settings(
            row.request,
            config,
            user=user,
            server=server,
            team="ml-engineering",
            image=f"r/x@{DIGEST}",
            ledger=ledger,
            instance=INSTANCE,
        )
        pod, _ = manifests(settings, user=user, server=server)
        pod["status"] = {"phase": "Running"}
        pods.append(pod)
    return pods


async def passes(hub_url: str, token: str, api_conf, data: Path, count: int) -> list[float]:
    engine = make_engine(f"sqlite:///{data}/ledger.sqlite")
    upgrade(engine)
    accountant = Accountant(
        Store(engine),
        kube_platform(),
        hub=HubAPI(hub_url, token),
        engine=KubePodView("mlfactory", instance=INSTANCE, configuration=api_conf),  # type: ignore[arg-type]
    )
    await accountant.start()
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        await accountant.reconcile()
        times.append(time.perf_counter() - t0)
    # where a pass goes: the hub's paged user list, the paged pod list (and their reading)
    t0 = time.perf_counter()
    await accountant.hub.sightings()
    hub_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    listed = await asyncio.to_thread(accountant.engine.containers)
    pods_s = time.perf_counter() - t0
    print(f"  parts: hub users {hub_s:.2f} s, pods {pods_s:.2f} s ({len(listed)} listed)")
    opened = await asyncio.to_thread(accountant.store.open_view)
    print(f"  open sessions in the ledger after the passes: {len(list(opened))}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlf-kube-reconcile-") as tmp:
        workdir = Path(tmp)
        hub = benchhub.BenchHub("hub", workdir)
        t0 = time.perf_counter()
        config = CONFIG.format(**hub.fields(), users=args.users)
        hub.start(config)
        try:
            hub.wait_up(600)
            users = [f"u{i:05d}" for i in range(args.users)]
            status, body = hub.api("GET", f"/users/{users[-1]}")
            assert status == 200, (status, body)
            print(f"hub up with {args.users} users in {time.perf_counter() - t0:.1f} s")
            pods = make_pods(args.pods, users)
            with kube_api() as api:
                api.pods.extend(pods)
                times = asyncio.run(
                    passes(
                        f"http://127.0.0.1:{hub.port}/hub/api",
                        hub.token,
                        api.configuration(),
                        workdir,
                        args.passes,
                    )
                )
                lists = sum(1 for _, path in api.requests if path.endswith("/pods"))
            print(f"{args.pods} labelled pods, {lists} list requests in all ({args.passes} passes)")
            for i, t in enumerate(times, 1):
                print(f"  pass {i}: {t:.2f} s{' (opens every session)' if i == 1 else ''}")
            worst = max(times)
            print(f"worst pass {worst:.2f} s; target <= 5 s: {'PASS' if worst <= 5 else 'MISS'}")
        finally:
            hub.stop()


if __name__ == "__main__":
    main()
