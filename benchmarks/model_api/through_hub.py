"""``/predict`` through the hub (the proxy + the models service's hub token check) next to
the same server called directly and MLServer 1.7.1 called directly, in one run; then the
first request after a publish through the registry, and the spawn-to-ready time of a few
servers (with the hub's own measure of each route it added to the proxy).

    .venv/bin/python benchmarks/model_api/through_hub.py --rounds 3 --proxy both \
        --mlserver-venv /tmp/venv-mlserver --out through-hub.json

``--proxy``: configurable-http-proxy (``chp``, the default proxy), Traefik (``traefik``,
``proxy.kind: traefik``; needs ``mlfactory[traefik]``), or ``both``: one hub per proxy, both
measured in the same rounds. ``--floor-behind chp traefik``: ``bench_http.py``'s bare
tornado floor (``predict_proba``, no auth, no checks) directly and behind a proxy of its own
(no hub): the ceiling that proxy's hop leaves any service at each concurrency.

A real hub (``mlfactory hub`` with the shipped config, in a throw-away data folder) serves
the registry's folder; the iris model of ``bench_http.py`` is published into it before the
hub starts, and the benchmark's user (``models.users``) calls it with a hub API token made
through the hub's own login and token API. The load generator, bursts, rotation and CPU
accounting are ``bench_http.py``'s (CPU through the hub counts the hub's whole process tree:
proxy, hub and models service).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_http import bodies, burst, free_port, servers, start, stop, summarize  # noqa: E402
from common import FEATURES, LABELS, ROW, train  # noqa: E402

PASSWORD = "bench-through-the-hub-1"  # noqa: S105 - the throw-away local accounts
ADMIN_PASSWORD = "bench-admin-password-1"  # noqa: S105 - the throw-away hub's first admin


def start_hub(
    data: Path, proxy: str = "chp", extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """``mlfactory hub`` with the shipped config plus the benchmark's user in models.users,
    behind ``proxy`` (``proxy.kind``)."""
    import yaml
    from mlfactory.hub.account_store import AccountStore
    from mlfactory.hub.accounts import hash_password
    from mlfactory.hub.platform_config import PACKAGED_CONFIG, accounts_db_url, prepare_data_dir

    config = yaml.safe_load(PACKAGED_CONFIG.read_text())
    user = user_for(proxy)
    config["models"] = {"users": [user]}
    config["proxy"] = {"kind": proxy}
    config_path = data / "platform.yaml"
    prepare_data_dir(data)
    config_path.write_text(yaml.safe_dump(config))
    store = AccountStore(accounts_db_url(data))
    store.create_account(user, hash_password(PASSWORD), authorized=True)
    store.close()
    port = free_port()
    env = {
        **os.environ,
        "MLFACTORY_DATA": str(data),
        "MLFACTORY_PORT": str(port),
        "MLFACTORY_CONFIG": str(config_path),
        "MLFACTORY_ADMIN_PASSWORD": ADMIN_PASSWORD,
        # no container engine or image registry: nobody's server is started here
        "MLFACTORY_BACKEND": "local",
        **(extra_env or {}),
    }
    cmd = [
        str(Path(sys.executable).with_name("mlfactory")),
        "hub",
        f"--JupyterHub.hub_port={free_port()}",
        f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}",
        f"--TraefikProxy.traefik_api_url=http://127.0.0.1:{free_port()}",
        "--log-level=WARN",
    ]
    log = open(data / "hub.log", "wb")  # noqa: SIM115 - lives as long as the hub
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited: see {data / 'hub.log'}")
        try:
            with urllib.request.urlopen(f"{url}/hub/login", timeout=5) as r:  # noqa: S310
                if r.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"the hub did not answer: see {data / 'hub.log'}")


def user_for(proxy: str) -> str:
    """The benchmark's user on the hub behind ``proxy`` (one OS account per hub, as root)."""
    return f"bench-{proxy}"


def hub_token(url: str, user: str) -> str:
    """Log in with the form and ask the hub's token API, as a person would on /hub/token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{url}/hub/login", timeout=30).read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"username": user, "password": PASSWORD, "_xsrf": xsrf})
    opener.open(f"{url}/hub/login?next=/hub/home", form.encode(), timeout=60).read()
    # the hub issues a new _xsrf cookie for the logged-in session
    xsrf = [c.value for c in jar if c.name == "_xsrf"][-1]
    req = urllib.request.Request(  # noqa: S310 - the benchmark's own local hub
        f"{url}/hub/api/users/{user}/tokens",
        data=json.dumps({"note": "through_hub benchmark", "expires_in": 3600}).encode(),
        headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"},
    )
    with opener.open(req, timeout=30) as r:
        return json.loads(r.read())["token"]


def call(method: str, url: str, token: str, body: object = None) -> tuple[int, bytes]:
    req = urllib.request.Request(  # noqa: S310 - the benchmark's own local hub
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - the local hub
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def first_request_after_publish(url: str, token: str, clf, n: int) -> list[dict[str, float]]:
    """Publish through the registry (the Publish button's call), wait until the models
    service serves the new version, then time the first ``/predict`` to it through the hub."""
    from mlfactory.model_api import Model, publish

    out = []
    record = {"records": [dict(zip(FEATURES, ROW, strict=True))]}
    for i in range(n):
        name = f"fresh-{i}"
        model = Model(clf, task="classification", name=name, labels=LABELS, input_schema=FEATURES)
        t0 = time.perf_counter()
        publish(
            model, test_input=np.array([ROW]), registry=f"{url}/services/mlfactory", token=token
        )
        t1 = time.perf_counter()
        ready = f"{url}/services/models/v2/models/{name}/versions/1/ready"
        while call("GET", ready, token)[0] != 200:
            if time.perf_counter() - t1 > 60:
                raise RuntimeError(f"{name} was not served within 60 s of its publish")
            time.sleep(0.05)
        t2 = time.perf_counter()
        status, body = call(
            "POST", f"{url}/services/models/v2/models/{name}/predict", token, record
        )
        t3 = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"first request to {name}: {status} {body[:300]!r}")
        out.append(
            {"publish_s": t1 - t0, "published_to_served_s": t2 - t1, "first_request_s": t3 - t2}
        )
    return out


def process_tree(root: int) -> list[int]:
    """``root`` and every process under it, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def process_ticks(root: int) -> dict[str, int]:
    """CPU ticks (user + system) of each process under ``root``, by role: where a request's
    time goes through the hub (proxy, hub, models service, platform service)."""
    out: dict[str, int] = {}
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        r = role(argv)
        out[r] = out.get(r, 0) + int(fields[11]) + int(fields[12])
    return out


def role(argv: list[str]) -> str:
    """A hub-tree process's role, from its program and module, not from its other arguments
    (the benchmark's folders and the hub's options name the proxies too)."""
    program = " ".join(Path(a).name for a in argv[:2])
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else ""
    if Path(argv[0]).name == "traefik":
        return "proxy (traefik)"
    if "configurable-http-proxy" in program:
        return "proxy (configurable-http-proxy)"
    if module == "mlfactory.model_api.serve":
        return "models service"
    if module == "mlfactory.service":
        return "platform service"
    if module == "jupyterhub" or program.startswith(("mlfactory hub", "jupyterhub")):
        return "hub"
    return "other"


def admin_token(url: str) -> str:
    """The first admin's token (for /hub/metrics), asked for with the admin's password."""
    req = urllib.request.Request(  # noqa: S310 - the benchmark's own local hub
        f"{url}/hub/api/users/admin/tokens",
        data=json.dumps(
            {"auth": {"username": "admin", "password": ADMIN_PASSWORD}, "expires_in": 3600}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - the local hub
        return json.loads(r.read())["token"]


def route_adds(url: str, admin: str) -> tuple[float, int]:
    """The hub's own account of the routes it added to its proxy (Prometheus
    ``proxy_add_duration_seconds``, successful adds): total seconds and count."""
    status, body = call("GET", f"{url}/hub/metrics", admin)
    if status != 200:
        raise RuntimeError(f"/hub/metrics answered {status}")
    total, count = 0.0, 0
    for line in body.decode().splitlines():
        if "proxy_add_duration_seconds" in line and 'status="success"' in line:
            if "_sum{" in line:
                total = float(line.rsplit(" ", 1)[1])
            elif "_count{" in line:
                count = int(float(line.rsplit(" ", 1)[1]))
    return total, count


def spawn_to_ready(url: str, user: str, token: str, admin: str, n: int) -> list[dict[str, float]]:
    """Start ``n`` named servers one after the other, each timed from the request to the
    hub's ``ready`` (which comes after the hub added its route and the proxy serves it) and
    to the first 200 of its API through the proxy; the route add is the hub's own measure.
    Each server is stopped before the next starts."""
    out = []
    api = f"{url}/hub/api/users/{user}"
    for i in range(n):
        name = f"s{i}"
        sum0, count0 = route_adds(url, admin)
        t0 = time.perf_counter()
        status, body = call("POST", f"{api}/servers/{name}", token, {"profile": "cpu-small"})
        if status not in (201, 202):
            raise RuntimeError(f"spawn {name}: {status} {body[:300]!r}")
        while True:
            server = json.loads(call("GET", api, token)[1])["servers"].get(name) or {}
            if server.get("ready"):
                break
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"{user}'s server {name} was not ready within 300 s")
            time.sleep(0.05)  # polling the real hub
        t1 = time.perf_counter()
        while call("GET", f"{url}/user/{user}/{name}/api/status", token)[0] != 200:
            if time.perf_counter() - t1 > 60:
                raise RuntimeError(f"{user}'s server {name} did not answer through the proxy")
            time.sleep(0.02)
        t2 = time.perf_counter()
        sum1, count1 = route_adds(url, admin)
        out.append(
            {
                "spawn_to_ready_s": t1 - t0,
                "spawn_to_first_200_s": t2 - t0,
                "route_add_s": (sum1 - sum0) / (count1 - count0) if count1 > count0 else 0.0,
            }
        )
        call("DELETE", f"{api}/servers/{name}", token)
        deadline = time.monotonic() + 120
        while name in json.loads(call("GET", api, token)[1])["servers"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{user}'s server {name} did not stop within 120 s")
            time.sleep(0.2)
    return out


def floor_behind(proxy: str, floor: dict, work: Path) -> dict:
    """A proxy of its own (the binary the hub runs, no hub) in front of the bare floor: what
    the proxy hop alone leaves of a service that does nothing but predict."""
    port, target = free_port(), f"http://127.0.0.1:{floor['port']}"
    if proxy == "chp":
        from mlfactory.hub.hubconfig import find_proxy_command

        cmd = [
            find_proxy_command() or "configurable-http-proxy",
            *("--ip", "127.0.0.1", "--port", str(port)),
            *("--api-ip", "127.0.0.1", "--api-port", str(free_port())),
            *("--default-target", target, "--log-level", "warn"),
        ]
    else:  # Traefik with one catch-all route in its file provider, as the hub's writes them
        routes = work / "floor-traefik.toml"
        routes.write_text(
            '[http.routers.floor]\nrule = "PathPrefix(`/`)"\nservice = "floor"\n'
            '[[http.services.floor.loadBalancer.servers]]\nurl = "' + target + '"\n'
        )
        cmd = [
            str(Path(sys.prefix) / "bin" / "traefik"),
            f"--entryPoints.web.address=127.0.0.1:{port}",
            f"--providers.file.filename={routes}",
            "--log.level=ERROR",
        ]
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": "bench-floor"}
    return {**floor, "name": f"bare tornado floor through ({proxy} alone)", "port": port,
            "cmd": cmd, "env": env}  # fmt: skip


def remove_accounts(work: Path) -> None:
    """As root the hubs made an OS account per user, homed in ``work``: remove them."""
    import pwd

    for account in pwd.getpwall():
        if account.pw_dir.startswith(f"{work}/"):
            subprocess.run(["userdel", account.pw_name], check=False, capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--mlserver-venv")
    p.add_argument("--first-requests", type=int, default=3)
    p.add_argument(
        "--proxy",
        choices=["chp", "traefik", "both"],
        default="chp",
        help="the hub's proxy (proxy.kind); both: one hub each, measured in the same rounds",
    )
    p.add_argument(
        "--spawns", type=int, default=3, help="servers started per hub to time spawn-to-ready"
    )
    p.add_argument(
        "--traefik-gomaxprocs",
        type=int,
        default=0,
        help="GOMAXPROCS for traefik (0: Go's default, the number of cores)",
    )
    p.add_argument(
        "--floor-behind",
        nargs="+",
        choices=["chp", "traefik"],
        default=[],
        help="also measure bench_http's bare tornado floor (predict_proba, no auth, no checks) "
        "directly and behind a proxy of its own (no hub): the most any service could get "
        "through that proxy",
    )
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.mlflow_venv = None
    proxies = ["chp", "traefik"] if args.proxy == "both" else [args.proxy]
    work = Path(tempfile.mkdtemp(prefix="bench-through-hub-"))
    work.chmod(0o711)  # the hub makes OS accounts homed in here
    args.work = str(work)
    clf, model_path = train(work)

    from mlfactory.model_api import Model, ModelRepository

    iris = Model(clf, task="classification", name="iris", labels=LABELS, input_schema=FEATURES)
    ModelRepository(work / "repo").publish(iris, alias="production")  # the direct servers'
    body_files = bodies(work)
    specs = [
        s
        for s in servers(args, work, model_path)
        if s["name"] == "mlfactory /predict"
        or s["name"].startswith("MLServer")
        or (args.floor_behind and s["name"] == "bare tornado floor")
    ]
    if args.floor_behind:
        floor = next(s for s in specs if s["name"] == "bare tornado floor")
        specs += [floor_behind(proxy, floor, work) for proxy in args.floor_behind]
    hubs: dict[str, tuple[subprocess.Popen, str]] = {}
    procs = []
    results: list[dict] = []
    firsts: dict[str, list[dict]] = {}
    spawns: dict[str, list[dict]] = {}
    try:
        throughs = []
        for proxy in proxies:
            data = work / f"data-{proxy}"
            ModelRepository(data / "hub" / "models").publish(iris, alias="production")
            env = {"GOMAXPROCS": str(args.traefik_gomaxprocs)} if args.traefik_gomaxprocs else {}
            hubs[proxy] = start_hub(data, proxy, env if proxy == "traefik" else None)
        tokens = {proxy: hub_token(url, user_for(proxy)) for proxy, (_, url) in hubs.items()}
        for proxy, (_, url) in hubs.items():
            through = {
                "name": f"mlfactory /predict through the hub ({proxy})",
                "port": int(url.rsplit(":", 1)[1]),
                "path": "/services/models/v2/models/iris/predict",
                "body": "predict",
                "headers": [f"Authorization: token {tokens[proxy]}"],
            }
            deadline = time.monotonic() + 120
            record = json.loads(Path(body_files["predict"]).read_text())
            while call("POST", f"{url}{through['path']}", tokens[proxy], record)[0] != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the models service behind the {proxy} hub: no 200")
                time.sleep(0.5)
            throughs.append(through)
        for spec in specs:
            procs.append(start(spec, body_files, args))
        all_specs = [*throughs, *specs]
        all_procs = [*(proc for proc, _ in hubs.values()), *procs]
        n_hubs = len(throughs)
        hz = os.sysconf("SC_CLK_TCK")
        for rnd in range(args.rounds):
            print(f"# round {rnd + 1}", flush=True)
            order = list(range(len(all_specs)))
            order = order[rnd % len(order) :] + order[: rnd % len(order)]
            for c in args.concurrency:
                for i in order:
                    through_hub = i < n_hubs
                    before = process_ticks(all_procs[i].pid) if through_hub else {}
                    r = burst(all_specs[i], all_procs[i], c, body_files, args)
                    if through_hub:
                        after = process_ticks(all_procs[i].pid)
                        total = r["requests"] / args.duration * (args.duration + args.warmup)
                        r["cpu_us_per_req_by_process"] = {
                            k: (after[k] - before.get(k, 0)) / hz / total * 1e6
                            for k in after
                            if total
                        }
                    r["round"] = rnd + 1
                    r["load1"] = os.getloadavg()[0]
                    results.append(r)
                    print(json.dumps(r), flush=True)
        for proc in procs:
            stop(proc)
        procs = []
        for proxy, (_, url) in hubs.items():
            token = tokens[proxy]
            firsts[proxy] = first_request_after_publish(url, token, clf, args.first_requests)
            if args.spawns:
                spawns[proxy] = spawn_to_ready(
                    url, user_for(proxy), tokens[proxy], admin_token(url), args.spawns
                )
    finally:
        for proc in procs:
            stop(proc)
        for proc, _ in hubs.values():
            stop(proc)
        remove_accounts(work)
    if args.out:
        Path(args.out).write_text(
            json.dumps({"bursts": results, "first": firsts, "spawns": spawns}, indent=1)
        )
    print(summarize(results))
    print()
    print(ratio_table(results))
    print()
    print(split_table(results))
    print()
    loads = [r["load1"] for r in results]
    print(f"load average (1 min) during the bursts: {min(loads):.1f} to {max(loads):.1f}")
    print()
    print("| proxy | after publish | min | median | max |\n|---|---|---|---|---|")
    for proxy, rows in firsts.items():
        for key in ("publish_s", "published_to_served_s", "first_request_s"):
            xs = [f[key] for f in rows]
            print(
                f"| {proxy} | {key} | {min(xs):.3f} | {statistics.median(xs):.3f} | {max(xs):.3f} |"
            )
    if spawns:
        print()
        print("| proxy | spawn | min | median | max |\n|---|---|---|---|---|")
        for proxy, rows in spawns.items():
            for key in ("spawn_to_ready_s", "spawn_to_first_200_s", "route_add_s"):
                xs = [f[key] for f in rows]
                print(
                    f"| {proxy} | {key} | {min(xs):.3f} | {statistics.median(xs):.3f} | "
                    f"{max(xs):.3f} |"
                )


def split_table(results: list[dict]) -> str:
    """Through each hub: median CPU µs per request of each process, per concurrency."""
    lines = ["| through | c | process | median CPU µs/req |", "|---|---|---|---|"]
    for server in sorted({r["server"] for r in results if "cpu_us_per_req_by_process" in r}):
        for c in sorted({r["concurrency"] for r in results}):
            rs = [
                r["cpu_us_per_req_by_process"]
                for r in results
                if r["server"] == server and r["concurrency"] == c
            ]
            for role in sorted({k for r in rs for k in r}):
                median = statistics.median(r.get(role, 0) for r in rs)
                lines.append(f"| {hub_label(server)} | {c} | {role} | {median:.0f} |")
    return "\n".join(lines)


def hub_label(server: str) -> str:
    """``mlfactory /predict through the hub (traefik)`` → ``traefik``."""
    return server.rsplit("(", 1)[-1].rstrip(")")


def ratio_table(results: list[dict]) -> str:
    """Per round: through-the-hub req/s over the best MLServer configuration's, same round,
    for each proxy."""
    lines = [
        "| through | c | ÷ best MLServer direct, per round | min | median | max |",
        "|---|---|---|---|---|---|",
    ]
    throughs = sorted({r["server"] for r in results if " through " in r["server"]})
    for server in throughs:
        for c in sorted({r["concurrency"] for r in results}):
            ratios = []
            for rnd in sorted({r["round"] for r in results}):
                same = [r for r in results if r["round"] == rnd and r["concurrency"] == c]
                hub = [r["rps"] for r in same if r["server"] == server]
                peer = max(
                    (r["rps"] for r in same if r["server"].startswith("MLServer")), default=0
                )
                if hub and peer:
                    ratios.append(hub[0] / peer)
            if ratios:
                lines.append(
                    f"| {hub_label(server)} | {c} | {', '.join(f'{x:.2f}×' for x in ratios)} | "
                    f"{min(ratios):.2f}× | {statistics.median(ratios):.2f}× | "
                    f"{max(ratios):.2f}× |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
