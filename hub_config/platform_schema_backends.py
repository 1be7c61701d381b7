"""The platform config's backend sections: ``images`` and ``containers`` (the container
backend: engine, registry, allowed images) and ``kubernetes`` (node pools, GPU types, storage,
where the platform's processes listen in the hub pod). Pure pydantic models;
``platform_schema`` composes them."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from .schema_types import Slug, _Strict


class Image(_Strict):
    slug: Slug
    display_name: str
    image: str = Field(
        description="repository and default tag, e.g. 'mlfactory/python-ds:2026.11': looked "
        "up in 'containers.registry' (its other tags are offered too), or a full reference "
        "such as 'quay.io/org/img:tag'"
    )
    description: str = ""
    default: bool = False


class Registry(_Strict):
    """The registry (Registry HTTP API v2) the catalog's images are pulled from."""

    url: str = Field(
        "",
        pattern=r"^(https?://[^/\s]+)?$",
        description="e.g. 'http://127.0.0.1:5055' (plain HTTP: loopback or a trusted network "
        "only) or 'https://registry.example.org'; '' uses the images the engine already has",
    )
    username: str = Field("", description="for registries that need basic or token auth")
    password_file: str = Field(
        "", description="a file holding the password or token (kept out of this file)"
    )


class Containers(_Strict):
    """The container backend: one container per server through the Docker Engine API,
    served by Docker or by Podman (``podman system service``)."""

    engine: str = Field(
        "unix:///run/podman/podman.sock",
        description="the Docker Engine API URL, e.g. 'unix:///var/run/docker.sock' or "
        "'tcp://127.0.0.1:2375'",
    )
    registry: Registry = Registry()
    allowed_images: tuple[str, ...] = Field(
        (),
        description="image patterns an admin allows besides the catalog ('*' and '?' "
        "wildcards, matched against the whole reference), e.g. 'registry.example.org/ds/*'",
    )
    user: str = Field(
        "1000:100", pattern=r"^[1-9][0-9]*:[0-9]+$", description="uid:gid servers run as"
    )
    pids_limit: int = Field(4096, ge=64, description="processes and threads per server")
    volume_root: str = Field(
        "",
        description="folder of the per-user home volumes (an ext4 image file each, sized by "
        "the disk choice); default $MLFACTORY_DATA/volumes",
    )


_LABEL_KEY_RE = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def _check_labels(v: dict[str, str]) -> dict[str, str]:
    for key, value in v.items():
        if len(key) > 316 or not _LABEL_KEY_RE.fullmatch(key):
            raise ValueError(f"{key!r} is not a Kubernetes label key (e.g. 'example.org/pool')")
        if not _LABEL_VALUE_RE.fullmatch(value):
            raise ValueError(
                f"{value!r} (for {key!r}) is not a Kubernetes label value: at most 63 of "
                "[A-Za-z0-9-_.], starting and ending with a letter or digit"
            )
    return v


Labels = Annotated[dict[str, str], BeforeValidator(lambda v: v if v is not None else {})]


class Toleration(_Strict):
    """A Kubernetes toleration, as in a pod spec (``key``/``operator``/``value``/``effect``)."""

    key: str = Field(min_length=1)
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    @model_validator(mode="after")
    def _exists_has_no_value(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("operator Exists takes no value; remove value or use Equal")
        return self


class NodePool(_Strict):
    """A group of nodes a profile's ``node_pool`` sends its servers to."""

    name: Slug
    node_selector: Labels = Field(
        default_factory=dict,
        description="labels the pool's nodes carry, e.g. {'mlfactory/node-pool': 'gpu-t4'}",
    )
    tolerations: tuple[Toleration, ...] = Field(
        (), description="taints of the pool's nodes that its servers tolerate"
    )
    storage_class: str | None = Field(
        None, description="storage class of home volumes for this pool; default: the section's"
    )

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_labels(v)


class GpuType(_Strict):
    """A GPU model a profile's ``gpu_type`` names, and how to land on nodes that have it."""

    name: str = Field(min_length=1, description="as profiles name it, e.g. 'nvidia-tesla-t4'")
    resource: str = Field(
        "nvidia.com/gpu", description="the extended resource the device plugin advertises"
    )
    node_selector: Labels = Field(
        default_factory=dict,
        description="labels of nodes with this GPU, e.g. "
        "{'cloud.google.com/gke-accelerator': 'nvidia-tesla-t4'}",
    )

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_labels(v)


class ServiceAddress(_Strict):
    """Where a platform process listens inside the hub pod, and how user pods reach it."""

    bind: str = Field("0.0.0.0", description="the address it listens on in its pod")  # noqa: S104
    port: int = Field(ge=1, le=65535)
    host: str = Field("hub", description="its name as user pods resolve it (a Service name)")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Kubernetes(_Strict):
    """The Kubernetes backend (``platform.backend: kubernetes``): one pod per server through
    KubeSpawner, usually installed with the Zero to JupyterHub chart (deploy/helm/)."""

    namespace: Slug = Field("mlfactory", description="where user pods and volumes go")
    node_pools: tuple[NodePool, ...] = ()
    gpu_types: tuple[GpuType, ...] = ()
    storage_classes: tuple[str, ...] = Field(
        (), description="storage classes the cluster offers for home volumes"
    )
    storage_class: str | None = Field(
        None, description="the home volumes' class; None: the cluster's default class"
    )
    user: str = Field(
        "1000:100", pattern=r"^[1-9][0-9]*:[0-9]+$", description="uid:gid servers run as"
    )
    platform_service: ServiceAddress = ServiceAddress(port=10101)
    models_service: ServiceAddress = ServiceAddress(port=10102)

    def node_pool(self, name: str) -> NodePool | None:
        return next((p for p in self.node_pools if p.name == name), None)

    def gpu_type(self, name: str) -> GpuType | None:
        return next((g for g in self.gpu_types if g.name == name), None)
