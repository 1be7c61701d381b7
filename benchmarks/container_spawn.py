"""Container spawn latency: request → server ready, mlfactory's container spawner vs vanilla
DockerSpawner, with the same image on the same engine in the same run.

Starts two real hubs (real configurable-http-proxy) side by side: one with DockerSpawner
(``spawner_class = "docker"``, running ``jupyterhub-singleuser``) and one with
``MLFactoryDockerSpawner`` (``"mlfactory-docker"``, running the image's own command,
``python -m mlfactory.spawner.singleuser``), both on the same Podman Docker-API service and
the same image, and measures:

1. latency: spawns alternate A, B, B, A between the hubs; each is timed from the REST
   request (POST /hub/api/users/<u>/server) to the hub reporting the server ready, then the
   server is stopped (its container removed). Medians, ranges, the ratio, and where the time
   went (request → container created → container started → ready, from the engine's
   timestamps).
2. concurrency: 10 users' servers requested at once on each hub (fresh users, then the same
   users again): time until all are ready, and each container's memory (cgroup).
3. the image's own start-up, without a hub: container create → the server's port accepts
   a connection, for each server command, with a stand-in hub API; and the engine's own
   cost (create + start + exit of ``true``).

    .venv/bin/python benchmarks/container_spawn.py --spawns 20 --concurrent 10

Needs root, podman, runc and docker-registry (``make engine``), and the image in the
registry (default: the test suite's daemons and ``127.0.0.1:5056/mlfactory/minimal:0.1.0``,
which the container tests build from this checkout).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import http.server
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import benchhub  # benchmarks/benchhub.py: the script's folder is on sys.path
import docker
import docker.errors
import yaml

# the test suite's daemons (tests/engine_fixture.py)
ENGINE_ROOT = "/var/tmp/mlfactory-test-engine"  # noqa: S108 - a fixed, shared path
REGISTRY = "127.0.0.1:5056"
IMAGE = f"{REGISTRY}/mlfactory/minimal:0.1.0"  # pushed by the tests and `make images`
USER_PREFIX = "cbench"  # the hubs' users; containers and volumes are named after them
VANILLA_PREFIX = "mlfbench-vanilla"  # DockerSpawner's container and volume prefix
PROBE_PREFIX = "mlfbench-probe"
PROFILE = {"cpu": 1, "memory": "2Gi", "disk": "10Gi"}  # the shipped cpu-small profile

HUB_CONFIG = (
    benchhub.HUB_CONFIG
    + """
c.JupyterHub.hub_ip = "{hub_ip}"
c.JupyterHub.hub_connect_ip = "127.0.0.1"  # the proxy, on this host
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # POST answers at once: 202
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
"""
)

VARIANTS = {
    # The documented DockerSpawner set-up: the image, a named volume per user for the home
    # folder, the server command; the same CPU and memory limits as mlfactory's profile.
    "vanilla": """
c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.client_kwargs = {{"base_url": "{engine}"}}
c.DockerSpawner.image = "{image}"
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.remove = True
c.DockerSpawner.prefix = "{vanilla_prefix}"
c.DockerSpawner.volumes = {{"{vanilla_prefix}-home-{{username}}": "/home/jovyan"}}
c.DockerSpawner.host_ip = "127.0.0.1"
c.DockerSpawner.hub_connect_url = "http://{hub_host}:{hub_port}"
c.DockerSpawner.cpu_limit = {cpu}
c.DockerSpawner.mem_limit = "{memory}"
{vanilla_network}
""",
    # mlfactory's spawner with its defaults: request resolved against the platform config,
    # image pulled by digest from the registry, ext4 home volume sized by the profile, limits,
    # labels, journal; ready when the server listens. No budget gate (see the README).
    "mlfactory": """
c.JupyterHub.spawner_class = "mlfactory-docker"
c.MLFactoryDockerSpawner.platform_config_file = "{data}/mlfactory.yaml"
c.MLFactoryDockerSpawner.volume_root = "{data}/volumes"
c.MLFactoryDockerSpawner.journal_root = "{data}/journal"
c.MLFactoryDockerSpawner.hub_host = "{hub_host}"
{mlfactory_network}
""",
}

NETWORKS = {
    # Podman's default bridge: the hub listens on all interfaces, containers reach it at
    # the bridge's gateway under the name Podman gives the host.
    "bridge": {"hub_ip": "0.0.0.0", "hub_host": "host.containers.internal", "mode": ""},  # noqa: S104
    # slirp4netns with the host's loopback at 10.0.2.2: the hub stays on loopback.
    "slirp4netns": {
        "hub_ip": "127.0.0.1",
        "hub_host": "10.0.2.2",
        "mode": "slirp4netns:allow_host_loopback=true",
    },
}


class SpawnFailed(RuntimeError):
    """A spawn the hub gave up on (the hub's log line says why)."""


def platform_config(engine: str, registry: str, image: str) -> dict:
    """The shipped example config, its catalog one image, and the test engine."""
    from mlfactory.hub.platform_config import PACKAGED_CONFIG

    config = yaml.safe_load(PACKAGED_CONFIG.read_text())
    config.setdefault("platform", {})["backend"] = "container"
    config["images"] = [{"slug": "minimal", "display_name": "Minimal", "image": image}]
    config["images"][0]["default"] = True
    for entry in config.get("profiles", []) + config.get("groups", []):
        if "images" in entry:
            entry["images"] = ["minimal"]
    config["containers"] = {"engine": engine, "registry": {"url": registry}, "user": "1000:100"}
    return config


def parse_time(stamp: str) -> float:
    """Epoch seconds of an engine timestamp (RFC 3339, nanoseconds, maybe a zone offset)."""
    stamp = stamp.strip()
    if stamp.endswith("Z"):
        stamp = stamp[:-1] + "+00:00"
    head, _, rest = stamp.partition(".")
    frac, zone = rest, ""
    for sign in "+-":
        if sign in rest:
            frac, _, zone = rest.partition(sign)
            zone = sign + zone
            break
    return datetime.datetime.fromisoformat(f"{head}.{(frac or '0')[:6]:0<6}{zone}").timestamp()


class Hub(benchhub.BenchHub):
    def __init__(self, variant: str, workdir: Path, args: argparse.Namespace) -> None:
        super().__init__(variant, workdir)
        net = NETWORKS[args.network]
        mode = net["mode"]
        fields = {
            **self.fields(),
            "hub_ip": net["hub_ip"],
            "hub_host": net["hub_host"],
            "engine": args.engine,
            "image": args.image,
            "vanilla_prefix": VANILLA_PREFIX,
            "cpu": PROFILE["cpu"],
            "memory": PROFILE["memory"].replace("Gi", "G"),  # docker-py: G is 1024**3
            "vanilla_network": f'c.DockerSpawner.network_name = "{mode}"' if mode else "",
            "mlfactory_network": f'c.MLFactoryDockerSpawner.network_name = "{mode}"'
            if mode
            else "",
        }
        (self.data / "mlfactory.yaml").write_text(
            yaml.safe_dump(platform_config(args.engine, args.registry, args.image))
        )
        self.start(
            (HUB_CONFIG + VARIANTS[variant]).format(**fields),
            {
                "MLFACTORY_DATA": str(self.data),
                "MLFACTORY_CONFIG": str(self.data / "mlfactory.yaml"),
            },
        )

    def add_user(self, user: str) -> None:
        status, body = self.api("POST", f"/users/{user}")
        if status not in (201, 409):
            raise RuntimeError(f"{self.variant}: creating {user} answered {status}: {body}")

    def request_spawn(self, user: str) -> None:
        status, body = self.api("POST", f"/users/{user}/server")
        if status not in (201, 202):
            raise RuntimeError(f"{self.variant}: spawn of {user} answered {status}: {body}")

    def server(self, user: str) -> dict:
        return self.api("GET", f"/users/{user}")[1].get("servers", {}).get("", {})

    def spawn_once(self, user: str, engine: docker.APIClient) -> dict:
        """Seconds from the request until ready, and the phases the engine saw."""
        t_request = time.time()
        t0 = time.perf_counter()
        self.request_spawn(user)
        self.wait_ready(user)
        elapsed = time.perf_counter() - t0
        t_ready = t_request + elapsed
        result = {"total": elapsed}
        name = (self.server(user).get("state") or {}).get("object_name")
        if name:
            info = engine.inspect_container(name)
            created, started = parse_time(info["Created"]), parse_time(info["State"]["StartedAt"])
            result.update(
                {
                    "to_created": created - t_request,
                    "to_started": started - created,
                    "to_ready": t_ready - started,
                }
            )
        self.stop_servers([user])
        return result

    def wait_ready(self, user: str) -> None:
        """Return when the hub says the server is ready: its progress stream's last event,
        sent when the spawn completes (no polling, which would load the hub's event loop)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/hub/api/users/{user}/server/progress",
            headers={"Authorization": f"token {self.token}", "Accept": "text/event-stream"},
        )
        with urllib.request.urlopen(req, timeout=300) as stream:  # noqa: S310 - local hub
            for raw in stream:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("ready"):
                    return
                if event.get("failed"):
                    raise SpawnFailed(f"{self.variant}: {event.get('message')}")
        raise SpawnFailed(f"{self.variant}: {self.last_error()}")

    def last_error(self) -> str:
        """The hub log's last line about a spawn that did not start."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        for line in reversed(lines):
            if "Not starting" in line or "SpawnException" in line or "failed to start" in line:
                return line.strip()[:400]
        return f"spawn failed; see {self.log_path}"

    def stop_servers(self, users: list[str]) -> None:
        for user in users:
            self.api("DELETE", f"/users/{user}/server")
        deadline = time.monotonic() + 120
        for user in users:
            while self.api("GET", f"/users/{user}")[1].get("servers"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.variant}: {user}'s server did not stop")
                time.sleep(0.05)

    def spawn_many(self, users: list[str], engine: docker.APIClient) -> dict:
        """Request all servers at once (one thread per user); seconds until all are ready,
        and each container's memory once they are."""
        barrier = threading.Barrier(len(users))
        t0 = 0.0

        def spawn(user: str) -> tuple[float, float]:
            nonlocal t0
            if barrier.wait() == 0:
                t0 = time.perf_counter()
            start = time.perf_counter()
            try:
                self.request_spawn(user)
                answered = time.perf_counter() - start
                self.wait_ready(user)
            except (SpawnFailed, RuntimeError) as e:
                return str(e)
            return answered, time.perf_counter()

        try:
            with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
                results = list(pool.map(spawn, users))
            done = [r for r in results if isinstance(r, tuple)]
            failed = [r for r in results if isinstance(r, str)]
            ready = [end - t0 for _, end in done] or [float("nan")]
            time.sleep(3)  # let the servers settle after start-up before reading their memory
            servers = [self.server(u) for u in users]
            names = [(m.get("state") or {}).get("object_name") for m in servers if m.get("ready")]
            memory = [container_memory(engine, name) for name in names if name]
        finally:
            self.stop_servers(users)
        return {
            "ready": len(done),
            "failed": failed,
            "requests": max((answered for answered, _ in done), default=float("nan")),
            "total": max(ready),
            "first": min(ready),
            "memory": memory,
        }


def container_memory(engine: docker.APIClient, name: str) -> dict[str, int]:
    """The container's memory from its cgroup (v1 with cgroupfs: usage incl. page cache, and
    RSS); cgroup v2 or another layout: the engine's stats (usage only)."""
    info = engine.inspect_container(name)
    cid = info["Id"]
    parent = (info.get("HostConfig") or {}).get("CgroupParent") or "libpod_parent"
    for base in (Path("/sys/fs/cgroup/memory") / parent, Path("/sys/fs/cgroup/memory")):
        folder = base / f"libpod-{cid}"
        if (folder / "memory.stat").exists():
            stat = dict(
                (k, int(v))
                for k, v in (
                    line.split() for line in (folder / "memory.stat").read_text().splitlines()
                )
            )
            usage = int((folder / "memory.usage_in_bytes").read_text())
            return {"usage": usage, "rss": stat.get("total_rss", stat.get("rss", 0))}
    stats = engine.stats(cid, stream=False)
    return {"usage": int(stats["memory_stats"].get("usage", 0)), "rss": 0}


# -- the image's own start-up ------------------------------------------------------------


class _StandInHub(http.server.BaseHTTPRequestHandler):
    """Answers the hub API calls a single-user server makes while it starts (the version
    check, activity) with 200 and the hub's version header."""

    version = ""

    def _answer(self) -> None:
        body = json.dumps({"version": self.version}).encode()
        self.send_response(200)
        self.send_header("X-JupyterHub-Version", self.version)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


def probe_startup(
    engine: docker.APIClient,
    image: str,
    command: list[str],
    hub_api: str,
    network: str,
    server: bool = True,
) -> dict:
    """Create and start one container running ``command``; seconds until its published port
    accepts a connection (``server=False``: until it exits)."""
    env = {
        "JUPYTERHUB_API_TOKEN": secrets.token_hex(16),
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-probe",
        "JUPYTERHUB_API_URL": hub_api,
        "JUPYTERHUB_ACTIVITY_URL": f"{hub_api}/users/probe/activity",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/probe/",
        "JUPYTERHUB_USER": "probe",
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/probe/",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/probe/oauth_callback",
        "JUPYTERHUB_DEFAULT_URL": "/lab",
    }
    host_config = {"port_bindings": {8888: ("127.0.0.1",)}, "auto_remove": False}
    if network:
        host_config["network_mode"] = network
    name = f"{PROBE_PREFIX}-{secrets.token_hex(4)}"
    t0 = time.perf_counter()
    cid = engine.create_container(
        image,
        command=command,
        environment=env,
        name=name,
        ports=[8888],
        host_config=engine.create_host_config(**host_config),
    )["Id"]
    t_created = time.perf_counter()
    try:
        engine.start(cid)
        t_started = time.perf_counter()
        port = int(
            engine.inspect_container(cid)["NetworkSettings"]["Ports"]["8888/tcp"][0]["HostPort"]
        )
        checks = 0
        while True:
            if checks % 10 == 0 and not engine.inspect_container(cid)["State"]["Running"]:
                break  # exited: `true`, or a server that failed (its log says)
            checks += 1
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.01)
            if time.perf_counter() - t0 > 120:
                raise RuntimeError(f"{command} did not listen within 120 s")
        t_end = time.perf_counter()
        state = engine.inspect_container(cid)["State"]
        if not state["Running"] and state.get("ExitCode"):
            tail = engine.logs(cid, tail=5).decode("utf-8", "replace")
            raise RuntimeError(f"{command} exited with {state['ExitCode']}: {tail}")
    finally:
        engine.remove_container(cid, force=True)
    return {
        "create": t_created - t0,
        "start": t_started - t_created,
        "listen": t_end - t_started,
        "total": t_end - t0,
    }


def is_server(command: list[str]) -> bool:
    return any("singleuser" in part for part in command)


def measure_startup(engine: docker.APIClient, args: argparse.Namespace) -> dict[str, list]:
    import importlib.metadata

    net = NETWORKS[args.network]
    _StandInHub.version = importlib.metadata.version("jupyterhub")
    server = http.server.ThreadingHTTPServer((net["hub_ip"], 0), _StandInHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hub_api = f"http://{net['hub_host']}:{server.server_address[1]}/hub/api"
    commands = {
        "engine only (true)": ["true"],
        "python -c pass": ["python", "-c", "pass"],
        "jupyterhub-singleuser": ["jupyterhub-singleuser"],
        "python -m mlfactory.spawner.singleuser": ["python", "-m", "mlfactory.spawner.singleuser"],
    }
    results: dict[str, list] = {label: [] for label in commands}
    try:
        for command in commands.values():  # warm-up: page cache, image layers mounted
            probe_startup(engine, args.image, command, hub_api, net["mode"], is_server(command))
        for i in range(args.startups):
            order = list(commands) if i % 2 == 0 else list(reversed(commands))
            for label in order:
                command = commands[label]
                results[label].append(
                    probe_startup(
                        engine, args.image, command, hub_api, net["mode"], is_server(command)
                    )
                )
    finally:
        server.shutdown()
    return results


# -- clean-up ----------------------------------------------------------------------------


def remove_leftovers(engine: docker.APIClient, volume_roots: list[Path]) -> None:
    """Containers and volumes this benchmark made (by name), and its loop-mounted homes."""
    from mlfactory.spawner.volumes import HomeVolume, unmount

    prefixes = (VANILLA_PREFIX, PROBE_PREFIX, f"mlfactory-{USER_PREFIX}")
    for container in engine.containers(all=True):
        if any(n.lstrip("/").startswith(prefixes) for n in container.get("Names") or []):
            try:
                engine.remove_container(container["Id"], force=True)
            except docker.errors.NotFound:
                pass
    for root in volume_roots:
        for image in root.glob("*.ext4") if root.is_dir() else ():
            try:
                unmount(HomeVolume(root, image.stem))
            except Exception as e:  # noqa: BLE001 - keep cleaning
                print(f"could not unmount {image}: {e}", file=sys.stderr)
    volumes = (engine.volumes() or {}).get("Volumes") or []
    for volume in volumes:
        name = volume["Name"]
        # mlfactory-home-<user>, or mlfactory-<volume root's hash>-home-<user>
        if name.startswith(VANILLA_PREFIX) or (
            name.startswith("mlfactory-") and f"home-{USER_PREFIX}-" in name
        ):
            try:
                engine.remove_volume(name, force=True)
            except docker.errors.APIError as e:
                print(f"could not remove volume {name}: {e}", file=sys.stderr)


# -- report ------------------------------------------------------------------------------


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):6.3f}s  "
        f"min {min(values):6.3f}s  max {max(values):6.3f}s"
    )


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def report(
    args: argparse.Namespace,
    image_id: str,
    startup: dict[str, list],
    times: dict[str, list[dict]],
    failures: dict[str, list[str]],
    many: dict[str, list[dict]],
) -> None:
    print()
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}; engine {args.engine}, network {args.network}"
    )
    print(f"image: {args.image} ({image_id[:19]})")
    if startup:
        print(f"\nimage start-up, container create → port accepts (n={args.startups} each):")
        for label, runs in startup.items():
            parts = "  ".join(
                f"{k} {statistics.median(r[k] for r in runs):.3f}s"
                for k in ("create", "start", "listen")
            )
            print(f"  {label:40s} {summary([r['total'] for r in runs])}   ({parts})")
    if any(times.values()):
        print(f"\nspawn latency, request → ready (n={args.spawns} each, alternating):")
        for name, runs in times.items():
            if not runs:
                continue
            parts = "  ".join(
                f"{k} {statistics.median(r[k] for r in runs):.3f}s"
                for k in ("to_created", "to_started", "to_ready")
                if all(k in r for r in runs)
            )
            print(f"  {name:10s} {summary([r['total'] for r in runs])}   ({parts})")
            if failures[name]:
                print(f"  {name:10s} {len(failures[name])} failed spawns (not timed):")
                for failure in failures[name]:
                    print(f"    {failure}")
        if len(times) == 2:
            ratio = statistics.median(r["total"] for r in times["mlfactory"]) / statistics.median(
                r["total"] for r in times["vanilla"]
            )
            print(f"  ratio of medians mlfactory/vanilla: {ratio:.2f} (target <= 0.70)")
    if any(many.values()):
        print(f"\n{args.concurrent} servers at once (round 1: new users, round 2: the same again):")
        for name, rounds in many.items():
            for i, r in enumerate(rounds, 1):
                usage = [m["usage"] for m in r["memory"]] or [0]
                rss = [m["rss"] for m in r["memory"]] or [0]
                for failure in r["failed"]:
                    print(f"  {name:10s} round {i}: FAILED {failure}")
                print(
                    f"  {name:10s} round {i}: {r['ready']}/{args.concurrent} ready, "
                    f"the last after {r['total']:6.2f}s "
                    f"(first {r['first']:.2f}s, requests answered {r['requests']:.2f}s); "
                    f"memory per server median {mib(statistics.median(usage))} "
                    f"(RSS {mib(statistics.median(rss))}), "
                    f"range {mib(min(usage))}–{mib(max(usage))}"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=20, help="timed spawns per hub (>= 20)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed spawns per hub")
    parser.add_argument("--concurrent", type=int, default=10, help="servers at once (0: skip)")
    parser.add_argument("--startups", type=int, default=10, help="image start-ups per command")
    parser.add_argument("--engine-root", default=ENGINE_ROOT, help="the engine's settings")
    parser.add_argument(
        "--engine", default="", help="engine URL (default: <engine-root>/podman.sock)"
    )
    parser.add_argument("--registry", default=f"http://{REGISTRY}", help="registry URL")
    parser.add_argument("--image", default=IMAGE, help="the image both hubs run")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="bridge")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["latency", "concurrent", "startup", "mlfactory"],
    )
    parser.add_argument("--keep", action="store_true", help="keep the hubs' logs and state")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root (Podman as root, loop-mounted home volumes)")

    from mlfactory.spawner.engine import LocalEngine

    local = LocalEngine(args.engine_root)
    location = args.registry.removeprefix("http://").removeprefix("https://")
    local.start_registry(location)
    args.engine = args.engine or local.start_podman(
        f"{args.engine_root}/podman.sock", registries=[location]
    )
    engine = docker.APIClient(base_url=args.engine, version="auto", timeout=120)
    try:
        engine.inspect_image(args.image)
    except docker.errors.ImageNotFound:
        print(f"pulling {args.image}", flush=True)
        engine.pull(args.image)
    image_id = engine.inspect_image(args.image)["Id"]

    variants = [v for v in VARIANTS if not (v == "mlfactory" and "mlfactory" in args.skip)]
    tmp = Path(tempfile.mkdtemp(prefix="mlf-cbench-"))
    print(f"hub logs: {tmp}/<variant>/hub.log", flush=True)
    times: dict[str, list[dict]] = {v: [] for v in variants}
    many: dict[str, list[dict]] = {v: [] for v in variants}
    failures: dict[str, list[str]] = {v: [] for v in variants}
    startup: dict[str, list] = {}
    remove_leftovers(engine, [])
    try:
        if "startup" not in args.skip:
            print("image start-up ...", flush=True)
            startup = measure_startup(engine, args)
        hubs = {v: Hub(v, tmp, args) for v in variants}
        try:
            for hub in hubs.values():
                hub.wait_up()
            if "latency" not in args.skip:
                user = f"{USER_PREFIX}-latency"
                for hub in hubs.values():
                    hub.add_user(user)
                    for _ in range(args.warmup):
                        hub.spawn_once(user, engine)
                print("latency ...", flush=True)
                for i in range(args.spawns):
                    order = list(hubs) if i % 2 == 0 else list(reversed(hubs))
                    for name in order:
                        try:
                            times[name].append(hubs[name].spawn_once(user, engine))
                        except SpawnFailed as e:  # counted and reported, not timed
                            print(f"  spawn failed: {e}", flush=True)
                            failures[name].append(str(e))
                            if len(failures[name]) > max(3, args.spawns // 4):
                                raise
                            hubs[name].stop_servers([user])
            if args.concurrent and "concurrent" not in args.skip:
                users = [f"{USER_PREFIX}-{i:02d}" for i in range(args.concurrent)]
                for hub in hubs.values():
                    for user in users:
                        hub.add_user(user)
                # A, B with fresh users, then B, A with the same users again
                for order in (list(hubs), list(reversed(hubs))):
                    for name in order:
                        print(f"{args.concurrent} at once: {name} ...", flush=True)
                        many[name].append(hubs[name].spawn_many(users, engine))
        finally:
            for hub in hubs.values():
                hub.stop()
    finally:
        remove_leftovers(engine, [tmp / v / "volumes" for v in variants])
        engine.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        report(args, image_id, startup, times, failures, many)  # what was measured, if failed

    return 0


if __name__ == "__main__":
    sys.exit(main())
