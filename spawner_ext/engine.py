"""The container engine and registry on this machine: reaching them, and starting Podman's
Docker-compatible API service and a loopback registry where an admin has none running.

The container backend speaks only the Docker Engine API (through docker-py, as
DockerSpawner does), so it works with Docker Engine and with ``podman system service``.
What is Podman-specific lives here: the settings a host with hybrid cgroups needs (runc and
the cgroupfs manager; crun refuses), ulimits below the host's hard limits, and plain HTTP to
a registry on loopback (``registries.conf``). The same files serve ``podman build`` and
``podman push``, so images built here run under the same settings.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# docker-py and requests (~6 MiB resident) are not imported here but to ping an ssh:// engine:
# the hub's config and the platform service import this module on every deployment.
# DockerSpawner loads them in the hub when the container backend runs; ``auto``'s probe and
# the service's view speak the Engine API through the standard library.

PODMAN_SOCKET = "/run/podman/podman.sock"

# runc + cgroupfs: the only pair that works on hosts with hybrid (v1) cgroups. Ulimits below
# the host's hard limits, or every container start fails with "error setting rlimits".
CONTAINERS_CONF = """\
# Written by mlfactory (spawner_ext/engine.py) for the Podman service it starts.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def registries_conf(insecure: list[str]) -> str:
    """registries.conf letting Podman use these registries (``host:port``) over plain HTTP."""
    lines = ["# Written by mlfactory: plain-HTTP registries on loopback.", ""]
    for location in insecure:
        lines += ["[[registry]]", f'location = "{location}"', "insecure = true", ""]
    return "\n".join(lines)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def engine_connection(url: str, timeout: float) -> http.client.HTTPConnection | None:
    """A standard-library connection to the Docker Engine API at ``url`` (``unix://``, plain
    ``tcp://`` / ``http://``, or ``https://``); None for schemes only docker-py speaks
    (``ssh://``). Nothing is sent yet."""
    scheme, _, rest = url.partition("://")
    if scheme in ("unix", "http+unix"):
        return _UnixHTTPConnection(rest, timeout)
    if scheme in ("tcp", "http", "https"):
        where = urllib.parse.urlsplit(f"http://{rest}")
        if scheme == "https":
            return http.client.HTTPSConnection(
                where.hostname or "", where.port or 2376, timeout=timeout
            )
        return http.client.HTTPConnection(where.hostname or "", where.port or 2375, timeout=timeout)
    return None


def engine_request(
    url: str, method: str, path: str, timeout: float, ok: tuple[int, ...] = (200,)
) -> tuple[int, Any]:
    """One Docker Engine API call (blocking): the status and the decoded JSON body (None when
    the status is not in ``ok`` or the body is empty). Raises OSError or HTTPException when
    nothing answers, ValueError for a scheme without a standard-library connection."""
    conn = engine_connection(url, timeout)
    if conn is None:
        raise ValueError(f"{url}: use a unix://, tcp://, http:// or https:// engine URL")
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status in ok and body:
        return response.status, json.loads(body)
    return response.status, None


def engine_problem(url: str, timeout: float = 3) -> str | None:
    """None when the engine at ``url`` answers its ping, else what went wrong (blocking).

    The ping (the Docker Engine API's ``GET /_ping``) goes through ``engine_request``: the
    hub asks at every start (``backend: auto``), and docker-py with requests would stay
    ~6 MiB resident just to learn that no engine runs here. docker-py pings the schemes the
    standard library does not speak."""
    try:
        status, _ = engine_request(url, "GET", "/_ping", timeout, ok=())  # "OK", not JSON
    except ValueError:
        return _docker_py_ping_problem(url, timeout)
    except (OSError, http.client.HTTPException) as e:
        return f"the container engine at {url} cannot be reached ({e})"
    return None if status == 200 else f"the container engine at {url} answered {status} to a ping"


def _docker_py_ping_problem(url: str, timeout: float) -> str | None:
    import docker
    import docker.errors
    import requests

    try:
        client = docker.APIClient(base_url=url, timeout=timeout, version="auto")
        try:
            client.ping()
        finally:
            client.close()
    except (docker.errors.DockerException, requests.RequestException, OSError) as e:
        return f"the container engine at {url} cannot be reached ({e})"
    return None


def _http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """``GET url`` with the standard library (no requests in the hub for one probe); an
    HTTP error status is an answer too. Raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  (http(s) from the config)
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def containers_problem(platform: Any) -> str | None:
    """None when servers can run as containers here: the engine answers, and the default
    image is in the registry (when one is configured). Else what is missing. Blocking: for
    the hub's start, where ``platform.backend`` is auto."""
    containers = platform.containers
    problem = engine_problem(containers.engine)
    if problem is not None or not containers.registry.url:
        return problem
    reference = platform.default_image.image
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = reference, "latest"
    url = f"{containers.registry.url}/v2/{repository}/tags/list"
    try:
        status, body = _http_get(url, timeout=3)
        tags = (json.loads(body).get("tags") or []) if status == 200 else []
    except (OSError, http.client.HTTPException, ValueError) as e:
        return f"the registry at {containers.registry.url} cannot be reached ({e})"
    if tag not in tags:
        return (
            f"the default image {reference} is not in the registry at "
            f"{containers.registry.url} (build it: make images)"
        )
    return None


def registry_location(url: str) -> str:
    """``host:port`` of a registry URL (what image references start with)."""
    return urllib.parse.urlsplit(url).netloc


class LocalEngine:
    """Podman's API service and a registry on loopback, started by mlfactory where none runs.

    Files live in ``root`` (``$MLFACTORY_DATA/engine``): the Podman settings, the registry's
    config and storage, and each daemon's log. Daemons outlive the command that started
    them (``make images``, the hub): servers keep running across a hub restart.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def containers_conf(self) -> Path:
        return self.root / "containers.conf"

    @property
    def registries_conf(self) -> Path:
        return self.root / "registries.conf"

    def podman_env(self, registries: list[str] = ()) -> dict[str, str]:
        """The environment for ``podman`` commands and the service: mlfactory's settings."""
        self.root.mkdir(parents=True, exist_ok=True)
        _write_if_changed(self.containers_conf, CONTAINERS_CONF)
        _write_if_changed(self.registries_conf, registries_conf(list(registries)))
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
        }

    def start_podman(
        self, socket: str = PODMAN_SOCKET, registries: list[str] = (), wait: float = 20
    ) -> str:
        """Start ``podman system service`` on ``socket`` unless something answers there;
        returns the engine URL. Raises RuntimeError when podman is missing or never answers."""
        url = f"unix://{socket}"
        if engine_problem(url, timeout=2) is None:
            return url
        podman = shutil.which("podman")
        if podman is None:
            raise RuntimeError("podman is not installed (Debian: apt-get install podman runc)")
        Path(socket).parent.mkdir(parents=True, exist_ok=True)
        env = self.podman_env(registries)
        log = open(self.root / "podman.log", "ab")  # noqa: SIM115 - the daemon keeps it
        subprocess.Popen(
            [podman, "system", "service", "--time=0", url],
            env=env,
            # conmon, which the service starts for each container, needs a working directory
            # that exists: not the starter's, which may be deleted while the service lives on
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait_for(lambda: engine_problem(url, timeout=2) is None, wait, f"podman at {url}")
        return url

    def start_registry(self, address: str = "127.0.0.1:5055", wait: float = 20) -> str:
        """Start Debian's ``docker-registry`` (the CNCF distribution registry) on
        ``address`` unless a registry answers there; returns its URL."""
        url = f"http://{address}"
        if _registry_answers(url):
            return url
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed (Debian: docker-registry)")
        self.root.mkdir(parents=True, exist_ok=True)
        storage = self.root / "registry"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.root / "registry.yml"
        _write_if_changed(
            config,
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {address}\n",
        )
        log = open(self.root / "registry.log", "ab")  # noqa: SIM115 - the daemon keeps it
        subprocess.Popen(
            [binary, "serve", str(config)],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait_for(lambda: _registry_answers(url), wait, f"the registry at {url}")
        return url


def start_local_registry(url: str, root: Path | str) -> bool:
    """Start a registry for ``url`` when it is plain HTTP on loopback, does not answer, and
    docker-registry is installed; True when one was started."""
    location = registry_location(url) if url.startswith("http://") else ""
    if location.rsplit(":", 1)[0] not in ("127.0.0.1", "localhost") or _registry_answers(url):
        return False
    if shutil.which("docker-registry") is None:
        return False
    try:
        LocalEngine(root).start_registry(location)
    except RuntimeError:
        return False  # left to containers_problem to report
    return True


def start_local_daemons(platform: Any, root: Path | str) -> list[str]:
    """Start what the config's container settings name on this machine and is not running:
    a plain-HTTP registry on loopback and Podman's service on its default socket, when
    docker-registry and podman are installed. Returns one line per daemon started (for the
    banner); a daemon that cannot start is left to ``containers_problem`` to report."""
    containers = platform.containers
    registry = containers.registry.url
    started = [f"registry at {registry}"] if start_local_registry(registry, root) else []
    if containers.engine == f"unix://{PODMAN_SOCKET}" and shutil.which("podman"):
        if engine_problem(containers.engine, timeout=2) is not None:
            loopback = [registry_location(registry)] if registry.startswith("http://") else []
            try:
                LocalEngine(root).start_podman(PODMAN_SOCKET, registries=loopback)
                started.append(f"Podman's API service at {containers.engine}")
            except RuntimeError:
                pass
    return started


def _registry_answers(url: str) -> bool:
    try:
        return _http_get(f"{url}/v2/", timeout=2)[0] in (200, 401)
    except (OSError, http.client.HTTPException, ValueError):
        return False


def _wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {seconds:.0f} s")
        time.sleep(0.2)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def labels_filter(labels: Mapping[str, str]) -> list[str]:
    """docker-py's ``filters={"label": ...}`` form of ``labels``."""
    return [f"{k}={v}" for k, v in labels.items()]
