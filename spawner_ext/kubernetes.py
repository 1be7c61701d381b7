"""The Kubernetes backend: each user's JupyterLab in its own pod, through KubeSpawner.

A thin KubeSpawner subclass with the other backends' choice, progress, budget gate and
ledger (``options.UserOptionsMixin``, ``progress.ProgressMixin``, ``ledger.LedgerMixin``).
The one resolved request becomes KubeSpawner's settings in ``kube_spec`` (pure); this module
resolves the image to its registry digest, applies the settings and lets KubeSpawner create
the volume claim and the pod. A request beyond the profile's limits is refused in
``run_pre_spawn_hook``, before KubeSpawner's ``start()`` reaches the Kubernetes API.

    c.JupyterHub.spawner_class = "mlfactory-kubernetes"   # platform.backend: kubernetes
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyterhub.spawner import SpawnException
from kubespawner import KubeSpawner
from mlfactory.hub.platform_runtime import data_dir
from mlfactory.hub.platform_schema import Kubernetes
from traitlets import default

from .container import hub_version, with_host
from .container_labels import instance_id
from .form import Enforcement
from .host import LocalHost
from .image_tags import ImageTags, TagsView, image_unusable, pin_image
from .kube_spec import kube_settings
from .ledger import LedgerMixin
from .options import UserOptionsMixin
from .profiles import HostCapabilities, ResourceRequest
from .progress import ProgressMixin
from .registry import RegistryError

# Set on the spawner for each start; the namespace stays what it was at construction (a
# restarted hub finds its pods there).
_PER_START_SKIP = {"namespace"}


class MLFactoryKubeSpawner(UserOptionsMixin, ProgressMixin, LedgerMixin, KubeSpawner):
    """Start each user's server in a pod with the resources they picked."""

    @default("namespace")
    def _mlfactory_namespace(self) -> str:
        return self._kube.namespace

    @default("default_url")
    def _default_url(self) -> str:
        return "/lab"

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        # the image's own interpreter: never the hub's
        return ["python", "-m", "mlfactory.spawner.singleuser"]

    @default("pvc_name_template")
    def _default_pvc_name_template(self) -> str:
        return "claim-{username}"  # one home volume per user, as kube_spec builds it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False  # this spawn was refused before start(): nothing to delete

    @property
    def _kube(self) -> Kubernetes:
        return self.platform.kubernetes or Kubernetes()

    # -- the choice --------------------------------------------------------------------

    _tags = ImageTags()

    def _enforcement(self, host: LocalHost) -> Enforcement:
        # the kubelet enforces CPU and memory, the device plugin GPUs, the claim the disk
        return Enforcement(cpu=True, memory=True, disk=True, gpu=True)

    def _capabilities(self, host: LocalHost) -> HostCapabilities:
        # GPUs come from the cluster's pools, not the hub's machine: a profile may ask for
        # as many as the config allows, of the declared types (the autoscaler adds nodes)
        most = 0
        for p in self.platform.profiles:
            adjustable = p.adjustable.gpu.max if p.adjustable and p.adjustable.gpu else 0
            most = max(most, p.gpu, int(adjustable))
        return HostCapabilities(
            gpu_count=most, gpu_types=frozenset(g.name for g in self._kube.gpu_types)
        )

    async def _image_tags(self) -> TagsView | None:
        return await MLFactoryKubeSpawner._tags.current(self.platform)

    # -- before the spawn --------------------------------------------------------------

    def get_env(self) -> dict:
        env = {**super().get_env(), **self._resource_env()}
        env["USER"] = self.user.name
        env.setdefault("MLFACTORY_HUB_VERSION", hub_version())
        if env.get("MLFACTORY_SERVICE_URL"):
            # the service listens in the hub pod; user pods reach it by its Service name
            env["MLFACTORY_SERVICE_URL"] = with_host(
                env["MLFACTORY_SERVICE_URL"], self._kube.platform_service.host
            )
        return env

    async def _image_by_digest(self, image_ref: str) -> str:
        """``image_ref`` as ``host/repo@sha256:…`` when it is in the platform's registry
        (the kubelet then runs exactly the image the catalog named), else as named."""
        try:
            return (await pin_image(image_ref, self.platform.containers.registry)).ref
        except RegistryError as e:
            self.log.error("Image %s for %s: %s", image_ref, self._log_name, e)
            raise image_unusable(image_ref, e) from None

    def apply_request(self, request: ResourceRequest, image: str) -> dict[str, Any]:
        """Set KubeSpawner's traits from ``request`` (``kube_spec.kube_settings``)."""
        groups = sorted(g.name for g in self.user.groups)
        settings = kube_settings(
            request,
            self.platform,
            user=self.user.name,
            server=self.name,
            team=groups[0] if groups else "",
            image=image,
            ledger=self.ledger,
            instance=instance_id(data_dir()),
        )
        for name, value in settings.items():
            if name not in _PER_START_SKIP:
                setattr(self, name, value)
        self.pvc_name = self._expand_user_properties(self.pvc_name_template)
        return settings

    async def run_pre_spawn_hook(self) -> Any:
        self._refused = False
        try:
            return await super().run_pre_spawn_hook()
        except SpawnException:
            self._refused = True
            raise

    # -- start and stop ----------------------------------------------------------------

    async def start(self) -> Any:
        self._refused = False
        request = self.resource_request or await self._resolve()
        if self.ledger is not None:
            self.ledger["ready"] = False
        try:
            self._emit(30, f"Getting image {request.image_ref}")
            image = await self._image_by_digest(request.image_ref)
            self.apply_request(request, image)
            await asyncio.to_thread(self._journal_started, self.pod_name)
            self._emit(55, f"Starting JupyterLab ({request.display_name})")
            url = await super().start()
            await asyncio.to_thread(self._journal_ready)
        except BaseException:
            await self._ledger_ended("failed to start")
            raise
        self._emit(100, "Ready")
        return url

    # JupyterHub polls and stops every failed spawn; one refused before start() made no pod
    # or claim, and KubeSpawner's poll and stop would still list (and delete) pods.

    async def poll(self) -> int | None:
        if self._refused:
            return 0
        return await super().poll()

    async def stop(self, now: bool = False) -> None:
        if self._refused:
            return
        await super().stop(now=now)
