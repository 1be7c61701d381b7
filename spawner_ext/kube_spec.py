"""A resolved request as Kubernetes objects: KubeSpawner's settings, the pod and its volume
claim. Pure.

The Kubernetes backend turns the one ``ResourceRequest`` into the traits of KubeSpawner
(``kube_settings``) here and nowhere else, and builds the objects KubeSpawner would create
from them with KubeSpawner's own builders (``kubespawner.objects.make_pod``/``make_pvc``),
so the mapping is tested and schema-validated without a cluster. Names follow KubeSpawner's
"safe" slug scheme (its answer to CVE-2020-15110): distinct users never share a name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from kubernetes_asyncio.client import ApiClient
from kubespawner.objects import make_pod, make_pvc
from kubespawner.slugs import is_valid_label, multi_slug
from kubespawner.slugs import safe_slug as kube_slug
from mlfactory.hub.platform_config import PlatformConfig
from mlfactory.hub.platform_schema import Kubernetes

from .container_labels import session_labels
from .container_spec import HOME, parse_user, server_dir
from .profiles import ResourceRequest
from .slugs import safe_slug

PREFIX = "mlfactory.org/"  # label and annotation keys (a DNS prefix, as Kubernetes asks)
MANAGED = PREFIX + "managed"  # "1" on every pod and claim mlfactory makes: the listing's selector
INSTANCE = PREFIX + "instance"
KEY = PREFIX + "ledger-key"
SESSION = PREFIX + "session"  # annotation: the ledger session as JSON (labels cannot hold it)
GPU_RESOURCE = "nvidia.com/gpu"
_SLUG_MAX = 48  # KubeSpawner's per-field budget in _expand_user_properties
# What a server's container may do: nothing beyond running as its own non-root user
# (the "restricted" Pod Security Standard).
CONTAINER_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
_serializer = ApiClient.__new__(ApiClient)  # sanitize_for_serialization needs no pool/config


class KubeSpecError(ValueError):
    """A request the cluster could not run as configured (a profile's pool or GPU type
    missing from ``kubernetes:``, which the config check normally catches first)."""


def user_server(user: str, server: str = "") -> str:
    """KubeSpawner's ``{user_server}`` under its "safe" slug scheme (as in
    ``KubeSpawner._expand_user_properties``): the user's slug, ``<user>--<server>`` for a
    named server, one hash over both when that would be too long."""
    safe_user = kube_slug(user, max_length=_SLUG_MAX)
    safe_server = kube_slug(server, max_length=_SLUG_MAX) if server else ""
    if len(safe_user) + len(safe_server) + 2 > _SLUG_MAX:
        return multi_slug([user, server], max_length=_SLUG_MAX)
    return f"{safe_user}--{safe_server}" if server else safe_user


def pod_name(user: str, server: str = "") -> str:
    """KubeSpawner's default ``pod_name_template``, ``jupyter-{user_server}``."""
    return f"jupyter-{user_server(user, server)}"


def pvc_name(user: str) -> str:
    """One claim per user (``claim-{username}``): named servers share it, each in its own
    folder, as on the container backend."""
    return f"claim-{kube_slug(user, max_length=_SLUG_MAX)}"


def label_value(text: str) -> str:
    """``text`` as a valid label value (≤ 63 of ``[a-z0-9-]``): kept when already one, else
    a readable stem plus a hash, so distinct texts never share a value."""
    return safe_slug(text, 63) if text else ""


def storage_quantity(n_bytes: int) -> str:
    """Bytes as a Kubernetes quantity, in Gi or Mi when exact (what ``kubectl`` shows)."""
    for unit, size in (("Gi", 2**30), ("Mi", 2**20)):
        if n_bytes % size == 0:
            return f"{n_bytes // size}{unit}"
    return str(n_bytes)


def _escape_template(text: str) -> str:
    # KubeSpawner expands {username}-style fields in extra_labels/annotations with
    # str.format: braces from JSON or user names must survive that as themselves.
    return text.replace("{", "{{").replace("}", "}}")


def _unescape_template(text: str) -> str:
    return text.replace("{{", "{").replace("}}", "}")


@dataclass(frozen=True)
class Placement:
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    storage_class: str | None


def placement(request: ResourceRequest, kube: Kubernetes) -> Placement:
    """Where the server may run: its profile's node pool and GPU type, from ``kubernetes:``."""
    selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    storage_class = kube.storage_class
    if request.node_pool:
        pool = kube.node_pool(request.node_pool)
        if pool is None:
            raise KubeSpecError(f"node pool {request.node_pool!r} is not in kubernetes.node_pools")
        selector.update(pool.node_selector)
        tolerations = [
            {k: v for k, v in t.model_dump().items() if v not in (None, "")}
            for t in pool.tolerations
        ]
        storage_class = pool.storage_class or storage_class
    if request.gpu and request.gpu_type:
        gpu = kube.gpu_type(request.gpu_type)
        if gpu is None:
            raise KubeSpecError(f"GPU type {request.gpu_type!r} is not in kubernetes.gpu_types")
        selector.update(gpu.node_selector)
    return Placement(selector, tolerations, storage_class)


def gpu_resource(request: ResourceRequest, kube: Kubernetes) -> str:
    gpu = kube.gpu_type(request.gpu_type) if request.gpu_type else None
    return gpu.resource if gpu else GPU_RESOURCE


def pod_labels(
    request: ResourceRequest, *, user: str, team: str, instance: str, key: str
) -> dict[str, str]:
    """Selectable labels (values made valid; the exact names are in the annotations)."""
    return {
        MANAGED: "1",
        INSTANCE: label_value(instance),
        PREFIX + "user": label_value(user),
        PREFIX + "team": label_value(team),
        PREFIX + "project": label_value(request.project),
        PREFIX + "profile": label_value(request.profile),
        KEY: label_value(key),
    }


def pod_annotations(
    request: ResourceRequest,
    ledger: Mapping[str, Any] | None,
    *,
    user: str,
    server: str,
    team: str,
) -> dict[str, str]:
    """The exact names, and the ledger session (``container_labels.session_labels``, the
    shape the platform service reads back) as one JSON annotation."""
    annotations = {
        PREFIX + "user": user,
        PREFIX + "server-name": server,
        PREFIX + "team": team,
        PREFIX + "project": request.project,
        PREFIX + "profile": request.profile,
        PREFIX + "image": request.image_option,
    }
    if ledger:
        annotations[SESSION] = json.dumps(session_labels(ledger, team), sort_keys=True)
    return annotations


def kube_settings(
    request: ResourceRequest,
    platform: PlatformConfig,
    *,
    user: str,
    server: str = "",
    team: str = "",
    image: str,
    ledger: Mapping[str, Any] | None = None,
    instance: str = "",
) -> dict[str, Any]:
    """KubeSpawner's traits for ``request``: ``setattr(spawner, name, value)`` for each.

    ``image`` is the reference to run, by registry digest (``repo@sha256:…``); ``ledger`` the
    spawner's session (labels and annotations), ``instance`` the platform instance.
    """
    kube = platform.kubernetes or Kubernetes()
    if request.mem_limit <= 0 or request.cpu_limit <= 0:
        raise KubeSpecError("a pod needs a positive CPU and memory limit")
    if request.disk <= 0:
        raise KubeSpecError("a home volume needs a positive size")
    uid, gid = parse_user(kube.user)
    where = placement(request, kube)
    extra_limits: dict[str, str] = {}
    if request.gpu:
        # extended resources: the request must equal the limit (Kubernetes sets it so)
        extra_limits[gpu_resource(request, kube)] = str(request.gpu)
    key = str((ledger or {}).get("key", ""))
    folder = server_dir(server)
    mount: dict[str, Any] = {"name": "home", "mountPath": HOME}
    if folder:
        mount["subPath"] = folder  # a named server's own folder in the user's volume
    return {
        "namespace": kube.namespace,
        "image": image,
        "image_pull_policy": "IfNotPresent",  # a digest names one image forever
        "cpu_limit": float(request.cpu_limit),
        "cpu_guarantee": float(request.cpu_guarantee),
        "mem_limit": int(request.mem_limit),
        "mem_guarantee": int(request.mem_guarantee),
        "extra_resource_limits": extra_limits,
        "extra_resource_guarantees": dict(extra_limits),
        "node_selector": where.node_selector,
        "tolerations": where.tolerations,
        "uid": uid,
        "gid": gid,
        "fs_gid": gid,
        "privileged": False,
        "allow_privilege_escalation": False,
        "container_security_context": dict(CONTAINER_SECURITY),
        "pod_security_context": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "storage_pvc_ensure": True,
        "pvc_name_template": "claim-{username}",
        "storage_capacity": storage_quantity(request.disk),
        "storage_class": where.storage_class,
        "storage_access_modes": ["ReadWriteOnce"],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
        "volume_mounts": [mount],
        "working_dir": HOME,
        "extra_labels": pod_labels(request, user=user, team=team, instance=instance, key=key),
        "extra_annotations": {
            k: _escape_template(v)
            for k, v in pod_annotations(
                request, ledger, user=user, server=server, team=team
            ).items()
        },
    }


def to_dict(obj: Any) -> Any:
    """A kubernetes_asyncio model as the API's JSON (camelCase, no nulls): what the client's
    ``sanitize_for_serialization`` gives for the models KubeSpawner builds (no dates), more
    than twice as fast."""
    cls = obj.__class__
    if obj is None or cls in _LEAVES or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [x if x.__class__ in _LEAVES else to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {k: v if v.__class__ in _LEAVES else to_dict(v) for k, v in obj.items()}
    fields = _fields(cls)
    if fields is None:
        return _serializer.sanitize_for_serialization(obj)
    # the models keep each attribute in ``_<name>`` behind a property: reading the instance
    # dict skips a Python-level getter per field (most of a pod's are None), and a leaf
    # value (most of the rest) is copied without a call
    values = vars(obj)
    return {
        name: v if v.__class__ in _LEAVES else to_dict(v)
        for slot, name in fields
        if (v := values[slot]) is not None
    }


_LEAVES = frozenset({str, int, float, bool})


@cache
def _fields(cls: type) -> tuple[tuple[str, str], ...] | None:
    """(instance attribute, JSON name) of each field of a kubernetes_asyncio model class;
    None for anything else."""
    types = getattr(cls, "openapi_types", None)
    if not isinstance(types, dict):
        return None
    return tuple(("_" + k, cls.attribute_map[k]) for k in types)


def manifests(
    settings: Mapping[str, Any],
    *,
    user: str,
    server: str = "",
    cmd: Sequence[str] = ("python", "-m", "mlfactory.spawner.singleuser"),
    env: Mapping[str, str] | None = None,
    port: int = 8888,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod and the volume claim KubeSpawner makes from ``settings`` (its own builders,
    its labels and names), as the API's JSON: what the schema tests validate."""
    pvc = pvc_name(user)
    labels = {
        "hub.jupyter.org/username": kube_slug(user, is_valid=_is_label),
        **settings["extra_labels"],
        "app.kubernetes.io/component": "singleuser-server",
        "component": "singleuser-server",
        "hub.jupyter.org/servername": kube_slug(server, is_valid=_is_label),
    }
    annotations = {
        "hub.jupyter.org/username": user,
        **({"hub.jupyter.org/servername": server} if server else {}),
        **{k: _unescape_template(v) for k, v in settings["extra_annotations"].items()},
    }
    volumes = [
        {**v, "persistentVolumeClaim": {"claimName": pvc}} if "persistentVolumeClaim" in v else v
        for v in settings["volumes"]
    ]
    pod = make_pod(
        name=pod_name(user, server),
        cmd=list(cmd),
        port=port,
        image=settings["image"],
        image_pull_policy=settings["image_pull_policy"],
        node_selector=settings["node_selector"],
        uid=settings["uid"],
        gid=settings["gid"],
        fs_gid=settings["fs_gid"],
        privileged=settings["privileged"],
        allow_privilege_escalation=settings["allow_privilege_escalation"],
        container_security_context=settings["container_security_context"],
        pod_security_context=settings["pod_security_context"],
        env=dict(env or {}),
        working_dir=settings["working_dir"],
        volumes=volumes,
        volume_mounts=settings["volume_mounts"],
        labels=labels,
        annotations=annotations,
        cpu_limit=settings["cpu_limit"],
        cpu_guarantee=settings["cpu_guarantee"],
        mem_limit=settings["mem_limit"],
        mem_guarantee=settings["mem_guarantee"],
        extra_resource_limits=settings["extra_resource_limits"],
        extra_resource_guarantees=settings["extra_resource_guarantees"],
        tolerations=settings["tolerations"],
    )
    claim = make_pvc(
        name=pvc,
        storage_class=settings["storage_class"],
        access_modes=settings["storage_access_modes"],
        selector=None,
        storage=settings["storage_capacity"],
        labels={
            "hub.jupyter.org/username": kube_slug(user, is_valid=_is_label),
            MANAGED: "1",
            INSTANCE: settings["extra_labels"][INSTANCE],
            PREFIX + "user": settings["extra_labels"][PREFIX + "user"],
        },
        annotations={"hub.jupyter.org/username": user},
    )
    pod_json, claim_json = to_dict(pod), to_dict(claim)
    pod_json["metadata"]["namespace"] = claim_json["metadata"]["namespace"] = settings["namespace"]
    return pod_json, claim_json


def _is_label(s: str) -> bool:
    return is_valid_label(s)
