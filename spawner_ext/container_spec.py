"""A resolved request as a container: names, limits, security settings and labels. Pure.

The container backend turns the one ``ResourceRequest`` into the keyword arguments of the
Docker Engine API's container create (docker-py's ``create_container`` and
``create_host_config``), here and nowhere else, so the mapping is tested without an
engine. Every name derived from a user or server name goes through ``slugs.safe_slug``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .container_labels import INSTANCE, PREFIX, session_labels
from .profiles import ResourceRequest
from .slugs import safe_slug

HOME = "/home/jovyan"  # the images' home folder (images/minimal/Dockerfile)
NOFILE = NPROC = 4096  # below the host's hard limits: a start fails above them
GPU_CDI_KIND = "nvidia.com/gpu"
# How GPUs reach a container: Podman's compat API takes CDI names as devices
# (``--device nvidia.com/gpu=0``); Docker Engine 25+ takes them as a "cdi" device request.
GpuStyle = Literal["devices", "device_requests"]

_NAME_PREFIX = "mlfactory-"
_SLUG_LEN = 63


def server_slug(user: str, server: str = "") -> str:
    """The slug of a user's default server (their name) or of a named server; "/" never
    survives ``safe_slug``, so a named server's slug is never a user's."""
    return safe_slug(user if not server else f"{user}/{server}", _SLUG_LEN)


def user_slug(user: str) -> str:
    return safe_slug(user, _SLUG_LEN)


def _prefix(instance: str) -> str:
    # several hubs may share one engine: each one's names carry its instance
    return f"{_NAME_PREFIX}{instance[:8]}-" if instance else _NAME_PREFIX


def container_name(user: str, server: str = "", instance: str = "") -> str:
    """``mlfactory-[<instance>-]<server slug>``: distinct for distinct (user, server) pairs
    and for distinct platform instances (``container_labels.instance_id``)."""
    return _prefix(instance) + server_slug(user, server)


def home_volume_name(user: str, instance: str = "") -> str:
    """``mlfactory-[<instance>-]home-<user slug>``: the engine's name of the user's home
    volume."""
    return f"{_prefix(instance)}home-{user_slug(user)}"


def server_dir(server: str) -> str:
    """The folder a server starts in, relative to the home volume: '' for the default
    server, the server name's slug for a named server."""
    return safe_slug(server) if server else ""


def parse_user(user: str) -> tuple[int, int]:
    """``"1000:100"`` → (1000, 100); ValueError for anything else."""
    m = re.fullmatch(r"([0-9]+):([0-9]+)", user)
    if not m:
        raise ValueError(f"container user must be 'uid:gid', got {user!r}")
    return int(m.group(1)), int(m.group(2))


def gpu_settings(gpu_ids: Sequence[int | str], style: GpuStyle) -> dict[str, Any]:
    """The host-config settings that give a container these GPUs (none: nothing)."""
    if not gpu_ids:
        return {}
    names = [f"{GPU_CDI_KIND}={i}" for i in gpu_ids]
    if style == "devices":
        # docker-py splits "a:b:perms"; a CDI name has no ':' and travels as PathOnHost
        return {"devices": names}
    return {"device_requests": [{"Driver": "cdi", "DeviceIDs": names, "Capabilities": [["gpu"]]}]}


@dataclass(frozen=True)
class ContainerSpec:
    """What the spawner hands to the engine: ``create_container(**create_kwargs,
    host_config=create_host_config(**host_config))``."""

    name: str
    image: str
    create_kwargs: dict[str, Any] = field(default_factory=dict)
    host_config: dict[str, Any] = field(default_factory=dict)


def server_labels(
    ledger: Mapping[str, Any] | None,
    *,
    user: str,
    server: str,
    team: str,
    request: ResourceRequest,
    instance: str,
) -> dict[str, str]:
    """The container's labels: the ledger session (``container_labels``) where there is
    one, and always the platform instance, who runs it and what they picked."""
    labels = session_labels(ledger, team) if ledger else {PREFIX + "managed": "1"}
    labels.update(
        {
            INSTANCE: instance,
            PREFIX + "user": user,
            PREFIX + "server-name": server,
            PREFIX + "team": team,
            PREFIX + "project": request.project,
            PREFIX + "profile": request.profile,
            PREFIX + "image": request.image_option,
        }
    )
    return labels


def container_spec(
    request: ResourceRequest,
    *,
    name: str,
    image: str,
    command: Sequence[str],
    env: Mapping[str, str],
    labels: Mapping[str, str],
    home_volume: str,
    user: str = "1000:100",
    pids_limit: int = 4096,
    port: int = 8888,
    host_ip: str = "127.0.0.1",
    network: str = "",
    workdir: str = HOME,
    cpuset_cpus: str = "",
    gpu_ids: Sequence[int | str] = (),
    gpu_style: GpuStyle = "devices",
) -> ContainerSpec:
    """The container for ``request``: its limits, its home volume at ``HOME``, the port
    published on ``host_ip`` (a free host port), its labels and security settings."""
    parse_user(user)  # a clear error before the engine gives a vague one
    if request.mem_limit <= 0 or request.cpu_limit <= 0:
        raise ValueError("a container needs a positive CPU and memory limit")
    host_config: dict[str, Any] = {
        "nano_cpus": round(request.cpu_limit * 1e9),
        "mem_limit": request.mem_limit,
        "memswap_limit": request.mem_limit,  # memory + swap = memory: no extra swap
        "pids_limit": pids_limit,
        "binds": {home_volume: {"bind": HOME, "mode": "rw"}},
        "port_bindings": {port: (host_ip,)},
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "ulimits": [
            {"Name": "nofile", "Soft": NOFILE, "Hard": NOFILE},
            {"Name": "nproc", "Soft": NPROC, "Hard": NPROC},
        ],
        # kept after an exit so its log can say why; the spawner removes it
        "auto_remove": False,
    }
    if network:
        host_config["network_mode"] = network
    if cpuset_cpus:
        host_config["cpuset_cpus"] = cpuset_cpus
    host_config.update(gpu_settings(gpu_ids, gpu_style))
    create_kwargs: dict[str, Any] = {
        "image": image,
        "name": name,
        "command": list(command),
        "environment": dict(env),
        "labels": dict(labels),
        "user": user,
        "working_dir": workdir,
        "ports": [port],
    }
    return ContainerSpec(
        name=name, image=image, create_kwargs=create_kwargs, host_config=host_config
    )
