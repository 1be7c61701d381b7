"""The container backend: each user's JupyterLab in its own container, through the Docker
Engine API (Docker, or Podman's ``podman system service``).

Built on DockerSpawner, with the local backend's choice, progress, budget gate and ledger
(``options.UserOptionsMixin``, ``progress.ProgressMixin``, ``ledger.LedgerMixin``). The one
resolved request becomes the container in ``container_spec`` (pure); this module does the
I/O around it: the engine, the image (pulled by digest from the platform's registry), the
user's size-limited home volume (``volumes``), and a start that returns once the server
accepts connections, or fails at once with the container's own last words when it exits.

Hub settings this spawner needs (Podman on one machine; the shipped config sets them,
``hubconfig.reachable_from_containers``): the containers reach the host at
``host.containers.internal`` (the bridge's gateway, 10.88.0.1 on Podman's default network),
not at 127.0.0.1, so the hub's API must listen there too while the proxy keeps talking to
it over loopback::

    c.JupyterHub.spawner_class = "mlfactory-docker"
    c.JupyterHub.hub_ip = "0.0.0.0"            # reachable from the containers' bridge
    c.JupyterHub.hub_connect_ip = "127.0.0.1"  # what the proxy (on this host) uses

The spawner rewrites the loopback URLs it hands to a container (``JUPYTERHUB_API_URL``,
``JUPYTERHUB_ACTIVITY_URL``, ``MLFACTORY_SERVICE_URL``) to ``hub_host`` (default
``host.containers.internal``); a service named there must listen beyond loopback too.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from html import escape
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from dockerspawner import DockerSpawner
from mlfactory.hub.platform_runtime import data_dir
from traitlets import Bool, Enum, Float, Unicode, default

from .container_labels import INSTANCE, MANAGED, PREFIX, instance_id
from .container_spec import (
    HOME,
    ContainerSpec,
    container_name,
    container_spec,
    home_volume_name,
    parse_user,
    server_dir,
    server_labels,
    user_slug,
)
from .form import Enforcement
from .gpus import NoGpuAvailable
from .host import LocalHost
from .image_tags import ImageTags, TagsView, image_unusable, pin_image
from .ledger import LedgerMixin
from .options import UserOptionsMixin
from .progress import ProgressMixin
from .registry import RegistryError
from .startup import failure_cause, last_log_lines, spawn_error, timeout_cause, timeout_cause_html
from .volumes import HomeVolume, VolumeError, engine_volume, ensure_folder, ensure_home

_TIMEOUT_MARGIN = 2.0  # as in local.py: give up before the hub's start_timeout does
_LOOPBACK = {"127.0.0.1", "localhost", "0.0.0.0", "::1", ""}  # noqa: S104 - matched, not bound
# The URLs a server calls back on: rewritten from loopback to the host as containers see it.
_CALLBACK_URLS = ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL", "MLFACTORY_SERVICE_URL")


def hub_version() -> str:
    return importlib.metadata.version("mlfactory")


def with_host(url: str, host: str) -> str:
    """``url`` with a loopback host replaced by ``host`` (other hosts kept)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in _LOOPBACK:
        return url
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class MLFactoryDockerSpawner(UserOptionsMixin, ProgressMixin, LedgerMixin, DockerSpawner):
    """Start each user's server in a container with the resources they picked."""

    engine_url = Unicode(
        "",
        config=True,
        help="""The Docker Engine API the containers run on; '' takes ``containers.engine``
        from the platform config.

        Example: ``c.MLFactoryDockerSpawner.engine_url = "unix:///var/run/docker.sock"``
        """,
    )

    volume_root = Unicode(
        "",
        config=True,
        help="""Folder of the per-user home volumes (``<user>.ext4`` image files, mounted at
        ``<user>/``); '' takes ``containers.volume_root``, else ``$MLFACTORY_DATA/volumes``.

        Example: ``c.MLFactoryDockerSpawner.volume_root = "/srv/mlfactory/volumes"``
        """,
    )

    hub_host = Unicode(
        "host.containers.internal",
        config=True,
        help="""The hub's machine as the containers reach it. Loopback URLs handed to a
        server (the hub's API, the platform service) are rewritten to it. Podman names the
        host ``host.containers.internal``; Docker needs ``host.docker.internal`` with
        ``extra_hosts`` set to ``host-gateway``, or the bridge's gateway address.

        Example: ``c.MLFactoryDockerSpawner.hub_host = "172.17.0.1"``
        """,
    )

    gpu_style = Enum(
        ["auto", "devices", "device_requests"],
        "auto",
        config=True,
        help="""How GPUs are handed to a container as CDI devices (``nvidia.com/gpu=<id>``):
        ``devices`` (Podman's compat API), ``device_requests`` (Docker Engine 25+, driver
        "cdi"), or ``auto``: ``devices`` when the engine says it is Podman.

        Example: ``c.MLFactoryDockerSpawner.gpu_style = "device_requests"``
        """,
    )

    ready_poll_interval = Float(
        0.02,
        config=True,
        help="""Seconds between checks that the new server accepts connections (a local
        TCP connect; the container's state is read every tenth check).""",
    )

    check_version = Bool(
        True,
        config=True,
        help="""Refuse to start a server in an image whose mlfactory differs from the hub's
        (the server compares ``MLFACTORY_HUB_VERSION`` with its own and exits).""",
    )

    @default("remove")
    def _default_remove(self) -> bool:
        return True  # a stopped server's container goes; its home volume stays

    @default("default_url")
    def _default_url(self) -> str:
        return "/lab"

    @default("object_name")
    def _object_name_default(self) -> str:
        return container_name(self.user.name, self.name, instance_id(data_dir()))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gpus: tuple[str, ...] = ()
        self._gpus_unclaimed = False  # held before a hub restart: not yet told to the host

    # -- the engine --------------------------------------------------------------------

    _clients: dict[str, docker.APIClient] = {}
    _clients_lock = threading.Lock()
    _pool: ThreadPoolExecutor | None = None

    @property
    def engine(self) -> str:
        return self.engine_url or self.platform.containers.engine

    @property
    def client(self) -> docker.APIClient:
        """One client per engine URL, shared by all servers (DockerSpawner keeps one)."""
        url = self.engine
        with MLFactoryDockerSpawner._clients_lock:  # spawns at once: one version request
            client = MLFactoryDockerSpawner._clients.get(url)
            if client is None:
                kwargs = {"version": "auto", "timeout": 60, **self.client_kwargs, "base_url": url}
                client = MLFactoryDockerSpawner._clients[url] = docker.APIClient(**kwargs)
        return client

    @property
    def executor(self) -> ThreadPoolExecutor:
        # DockerSpawner's pool has one thread: ten spawns at once would queue behind each
        # other's pulls and inspections.
        cls = MLFactoryDockerSpawner
        if cls._pool is None:
            cls._pool = ThreadPoolExecutor(16, thread_name_prefix="mlfactory-docker")
        return cls._pool

    # -- the choice --------------------------------------------------------------------

    _tags = ImageTags()  # one per hub process: every picker shares the registry listing

    def _enforcement(self, host: LocalHost) -> Enforcement:
        # the engine enforces CPU and memory (cgroups), devices (CDI) and the volume's size
        return Enforcement(cpu=True, memory=True, disk=True, gpu=True)

    async def _image_tags(self) -> TagsView | None:
        return await MLFactoryDockerSpawner._tags.current(self.platform)

    # -- before the spawn --------------------------------------------------------------

    def get_env(self) -> dict:
        env = {**super().get_env(), **self._resource_env()}
        env["HOME"] = HOME
        env["USER"] = self.user.name
        if self.check_version:
            # an admin's ``environment`` may pin it (a test of the refusal does)
            env.setdefault("MLFACTORY_HUB_VERSION", hub_version())
        for key in _CALLBACK_URLS:
            if env.get(key):
                env[key] = with_host(env[key], self.hub_host)
        return env

    # -- start -------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        limit = self.start_timeout
        timeout = asyncio.timeout(max(0.0, limit - min(_TIMEOUT_MARGIN, limit / 10)))
        self._start_tail = ""
        try:
            async with timeout:
                return await self._start()
        except TimeoutError:
            if not timeout.expired():
                raise
            lines = last_log_lines(self._start_tail)
            raise spawn_error(
                timeout_cause(limit, lines),
                reason="timeout",
                log_message=f"Container {self.object_name} did not start within {limit} s",
                status_code=500,
                html_message=timeout_cause_html(limit, lines),
            ) from None

    async def _start(self) -> tuple[str, int]:
        request = self.resource_request or await self._resolve()
        if self.ledger is not None:
            self.ledger["ready"] = False  # a start that fails before it is ready is free
        try:
            self._emit(20, "Connecting to the container engine")
            problem = await self._engine_problem()
            if problem:
                self.log.error("Cannot spawn %s: %s", self._log_name, problem)
                raise spawn_error(
                    f"Your server could not be started: {problem}. Ask an admin.",
                    reason="engine",
                    status_code=503,
                )
            self._emit(30, f"Getting image {request.image_ref}")
            image = await self._pull(request.image_ref)
            self._emit(45, "Preparing your home volume")
            volume = await self._prepare_home(request)
            await self._remove_leftover()
            self._gpus = await self._take_gpus(request)
            spec = await self._spec(request, image, volume)
            self._emit(55, f"Starting JupyterLab ({request.display_name})")
            self.log.info("Creating container %s from %s", spec.name, image)
            host_config = self.client.create_host_config(**spec.host_config)
            created = await self.docker(
                "create_container", **spec.create_kwargs, host_config=host_config
            )
            self.object_id = created["Id"]
            # in the journal (not ready yet) before it runs: the service must never see it
            # running without a record, or it would count it as ready
            await asyncio.to_thread(self._journal_started, self.object_id)
            await self.start_object()
            self._emit(70, "Waiting for JupyterLab to accept connections")
            ip, port = await self._wait_until_listening()
            await asyncio.to_thread(self._journal_ready)
        except BaseException:
            await self._discard()
            await self._ledger_ended("failed to start")
            raise
        self._emit(100, "Ready")
        return ip, port

    async def _pull(self, image_ref: str) -> str:
        """The image to run, present in the engine: pulled by digest from the platform's
        registry when the reference is in it, else as named (pulled if missing)."""
        try:
            pinned = await pin_image(image_ref, self.platform.containers.registry)
        except RegistryError as e:
            self.log.error("Image %s for %s: %s", image_ref, self._log_name, e)
            raise image_unusable(image_ref, e) from None
        ref = pinned.ref
        auth = None
        if pinned.password:
            auth = {
                "username": self.platform.containers.registry.username,
                "password": pinned.password,
            }
        try:
            # a digest names one image forever; a reference elsewhere is used as present
            await self.docker("inspect_image", ref)
            return ref
        except docker.errors.NotFound:
            pass
        self.log.info("Pulling %s for %s", ref, self._log_name)
        problem = await asyncio.to_thread(self._pull_now, ref, auth)
        if problem:
            self.log.error("Pull of %s failed: %s", ref, problem)
            raise spawn_error(
                f"The image {image_ref} could not be pulled ({problem}). Ask an admin.",
                reason="image",
                status_code=500,
            )
        return ref

    def _pull_now(self, ref: str, auth: dict | None) -> str | None:
        """Pull ``ref`` (blocking); None when it is then present, else the engine's error."""
        try:
            # the engine reports a failed pull inside the stream, not as an HTTP status
            for event in self.client.pull(ref, stream=True, decode=True, auth_config=auth):
                if isinstance(event, dict) and event.get("error"):
                    return str(event["error"]).strip()
            self.client.inspect_image(ref)
        except (docker.errors.DockerException, requests.RequestException) as e:
            return str(getattr(e, "explanation", None) or e)
        return None

    async def _prepare_home(self, request) -> str:
        """The user's home volume: sized, mounted, bound into the engine; its name."""
        containers = self.platform.containers
        uid, gid = parse_user(containers.user)
        root = self.volume_root or containers.volume_root or str(data_dir() / "volumes")
        volume = HomeVolume(Path(root), user_slug(self.user.name))

        def prepare() -> str:
            ensure_home(volume, request.disk, uid, gid)
            ensure_folder(volume, server_dir(self.name), uid, gid)
            instance = instance_id(data_dir())
            labels = {MANAGED: "1", INSTANCE: instance, PREFIX + "user": self.user.name}
            name = home_volume_name(self.user.name, instance)
            return engine_volume(self.client, volume, name, labels)

        try:
            return await asyncio.to_thread(prepare)
        except (VolumeError, OSError, docker.errors.DockerException) as e:
            self.log.error("Home volume of %s not usable: %s", self._log_name, e)
            raise spawn_error(
                f"Your home volume could not be prepared ({e}). Ask an admin.",
                reason="volume",
                status_code=500,
            ) from None

    async def _remove_leftover(self) -> None:
        """A container of this server left by a crash or a hub stopped mid-start."""
        try:
            await self.docker("remove_container", self.object_name, force=True)
            self.log.warning("Removed a leftover container %s", self.object_name)
        except docker.errors.NotFound:
            pass

    async def _take_gpus(self, request) -> tuple[str, ...]:
        if not request.gpu:
            return ()
        host = await LocalHost.get(self.nvidia_smi)
        try:
            return tuple(
                str(g)
                for g in host.allocator.allocate(self.object_name, request.gpu, request.gpu_type)
            )
        except NoGpuAvailable as e:
            raise spawn_error(str(e), reason="gpu", status_code=503) from None

    async def _release_gpus(self) -> None:
        if self._gpus:
            host = await LocalHost.get(self.nvidia_smi)
            host.allocator.release(self.object_name)
            self._gpus = ()

    async def _spec(self, request, image: str, volume_name: str) -> ContainerSpec:
        info = await self.docker("inspect_image", image)
        command = list(info["Config"].get("Cmd") or []) + list(self.get_args())
        groups = sorted(g.name for g in self.user.groups)
        style = self.gpu_style
        if style == "auto":
            style = "devices" if await self._engine_is_podman() else "device_requests"
        folder = server_dir(self.name)
        return container_spec(
            request,
            name=self.object_name,
            image=image,
            command=command,
            env=self.get_env(),
            labels=server_labels(
                self.ledger,
                user=self.user.name,
                server=self.name,
                team=groups[0] if groups else "",
                request=request,
                instance=instance_id(data_dir()),
            ),
            home_volume=volume_name,
            user=self.platform.containers.user,
            pids_limit=self.platform.containers.pids_limit,
            port=self.port,
            host_ip=self.host_ip,
            network=self.network_name if self.network_name != "bridge" else "",
            workdir=f"{HOME}/{folder}" if folder else HOME,
            gpu_ids=self._gpus,
            gpu_style=style,
        )

    async def _engine_problem(self) -> str | None:
        """None when the engine answers a ping on the shared client, else why not. The
        client negotiates its API version once (Podman's ``/version`` takes ~0.4 s, and ten
        spawns at once asking it each made the engine look down)."""
        try:
            await self.docker("ping")
        except (docker.errors.DockerException, requests.RequestException, OSError) as e:
            MLFactoryDockerSpawner._clients.pop(self.engine, None)  # connect afresh next time
            return f"the container engine at {self.engine} cannot be reached ({e})"
        return None

    _podman: dict[str, bool] = {}  # engine URL -> whether it is Podman (asked once)

    async def _engine_is_podman(self) -> bool:
        known = MLFactoryDockerSpawner._podman.get(self.engine)
        if known is None:
            version = await self.docker("version")
            components = version.get("Components", [])
            known = any("podman" in c.get("Name", "").lower() for c in components)
            MLFactoryDockerSpawner._podman[self.engine] = known
        return known

    async def _container_state(self) -> dict:
        return (await self.docker("inspect_container", self.object_id))["State"]

    async def _logs(self, lines: int = 50) -> str:
        try:
            raw = await self.docker("logs", self.object_id, tail=lines)
        except docker.errors.DockerException:
            return ""
        return raw.decode("utf-8", "replace")

    async def _wait_until_listening(self) -> tuple[str, int]:
        """The server's address once its published port accepts a TCP connection; a
        container that exits first fails the spawn with the cause from its log."""
        info = await self.docker("inspect_container", self.object_id)
        bound = (info["NetworkSettings"].get("Ports") or {}).get(f"{self.port}/tcp") or []
        if not bound:
            raise spawn_error(
                "The engine published no port for your server. Ask an admin.",
                reason="port",
                status_code=500,
            )
        ip = bound[0].get("HostIp") or self.host_ip
        ip = self.host_ip if ip in ("0.0.0.0", "") else ip  # noqa: S104 - a wildcard bind
        port = int(bound[0]["HostPort"])
        checks = 0
        while True:
            if checks % 10 == 0:
                state = await self._container_state()
                if not state.get("Running"):
                    await self._fail_exited(state)
            checks += 1
            try:
                _, writer = await asyncio.open_connection(ip, port)
            except OSError:
                await asyncio.sleep(self.ready_poll_interval)
                continue
            writer.close()
            await writer.wait_closed()
            return ip, port

    async def _fail_exited(self, state: dict) -> None:
        tail = await self._logs()
        code = state.get("ExitCode")
        cause = failure_cause(tail)
        lines = last_log_lines(tail)
        self.log.error("Container %s exited with %s: %s", self.object_name, code, cause)
        message = f"Your server stopped during start-up (exit code {code}): {cause}"
        html = None
        if len(lines) > 1:
            html = f"{escape(message)}<pre>{escape(chr(10).join(lines))}</pre>"
        raise spawn_error(
            message,
            reason="server-exited",
            log_message=f"Container {self.object_name} exited with {code}: {cause}",
            status_code=500,
            html_message=html,
        )

    async def _discard(self) -> None:
        """After a failed start: keep its last log lines, remove its container, free its
        GPUs. Best effort: the engine may be what failed."""
        await self._release_gpus()
        if not self.object_id:
            return
        try:
            self._start_tail = await asyncio.wait_for(self._logs(), 10)
            await asyncio.wait_for(self.remove_object(), 30)
        except (docker.errors.DockerException, requests.RequestException, TimeoutError) as e:
            self.log.warning("Cannot remove container %s: %s", self.object_name, e)
        self.object_id = ""

    # -- running, stopping -------------------------------------------------------------

    async def poll(self) -> int | None:
        if self._gpus_unclaimed:
            # after a hub restart: this server still holds its GPUs; no other may get them
            host = await LocalHost.get(self.nvidia_smi)
            host.allocator.restore(self.object_name, self._gpus)
            self._gpus_unclaimed = False
        try:
            return await super().poll()
        except (docker.errors.DockerException, requests.RequestException) as e:
            # an engine that does not answer says nothing about the server: still running
            self.log.warning("Cannot poll %s (%s): %s", self._log_name, self.engine, e)
            return None

    async def stop(self, now: bool = False) -> None:
        self._restart_progress()
        await super().stop(now=now)
        await self._release_gpus()

    def get_state(self) -> dict:
        state = super().get_state()
        if self._gpus:
            state.setdefault("mlfactory", {})["gpus"] = list(self._gpus)
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self._gpus = tuple((state.get("mlfactory") or {}).get("gpus") or ())
        self._gpus_unclaimed = bool(self._gpus)
