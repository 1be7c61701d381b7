"""The pure Kubernetes builder (spawner_ext/kube_spec.py): every request the Kubernetes
platform config allows becomes a pod and a claim valid for each supported Kubernetes version,
with the limits, placement, labels and security the request and config say; names follow
KubeSpawner's safe slug scheme; bad requests and bad config are refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient
from kubespawner.objects import make_pod
from kubespawner.slugs import is_valid_label, is_valid_object_name
from mlfactory.hub.platform_config import ConfigError, parse_platform_config
from mlfactory.spawner.journal import new_ledger
from mlfactory.spawner.kube_spec import (
    GPU_RESOURCE,
    KEY,
    MANAGED,
    SESSION,
    KubeSpecError,
    kube_settings,
    label_value,
    manifests,
    pod_name,
    pvc_name,
    storage_quantity,
    to_dict,
    user_server,
)
from mlfactory.spawner.profiles import RequestError, resolve_request, user_access
from mlfactory.spawner.slugs import safe_slug

from tests.kubernetes import kube_schema
from tests.kubernetes.cases import (
    DIGEST,
    PLATFORM_FILE,
    Row,
    cluster_caps,
    kube_platform,
    rows,
)

CONFIG = kube_platform()
ROWS = list(rows(CONFIG))
GIB = 2**30


def build(row_request, user: str = "alice", server: str = "", team: str = "ml-engineering"):
    ledger = new_ledger(user, server, [team], row_request)
    image = f"registry.example.com/{row_request.image_ref.split(':')[0]}@{DIGEST}"
    settings = kube_settings(
        row_request,
        CONFIG,
        user=user,
        server=server,
        team=team,
        image=image,
        ledger=ledger,
        instance="0123456789abcdef",
    )
    pod, claim = manifests(settings, user=user, server=server, env={"MLFACTORY_X": "1"})
    return settings, pod, claim, ledger


def test_the_table_covers_every_profile_gpu_count_and_image():
    assert {r.profile for r in ROWS} == {p.slug for p in CONFIG.profiles}
    a100 = [r for r in ROWS if r.profile == "gpu-a100"]
    assert sorted({r.gpu for r in a100}) == list(range(1, 9))
    assert {r.image for r in ROWS if r.profile == "cpu-small"} == {i.slug for i in CONFIG.images}
    assert len({r.disk for r in ROWS}) >= 4  # 10, 20, 50, 200 GiB


@pytest.mark.parametrize("version", kube_schema.SUPPORTED_VERSIONS)
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_every_manifest_is_valid_for_the_supported_versions(row: Row, version: str):
    settings, pod, claim, _ = build(row.request, user=f"user-{row.id}"[:40], server="exp 1")
    for manifest in (pod, claim):
        kube_schema.validate(manifest, version)
    container = pod["spec"]["containers"][0]
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert limits["cpu"] == row.request.cpu_limit
    assert requests["cpu"] == row.request.cpu_guarantee
    assert limits["memory"] == row.request.mem_limit
    assert requests["memory"] == row.request.mem_guarantee
    if row.gpu:
        assert limits[GPU_RESOURCE] == requests[GPU_RESOURCE] == str(row.gpu)
        gpu_type = CONFIG.kubernetes.gpu_type(row.request.gpu_type)
        for k, v in gpu_type.node_selector.items():
            assert pod["spec"]["nodeSelector"][k] == v
    else:
        assert GPU_RESOURCE not in limits
    assert claim["spec"]["resources"]["requests"]["storage"] == storage_quantity(row.disk)
    assert container["image"].endswith(DIGEST)


def test_the_fast_validator_agrees_with_kubernetes_validate():
    """The compiled validator the benchmark uses accepts what kubernetes-validate accepts and
    refuses what it refuses (a wrong type, an unknown field, a missing container image)."""
    _, pod, claim, _ = build(ROWS[-1].request)
    broken: list[dict[str, Any]] = []
    for path, value in (
        (("spec", "containers", 0, "resources", "limits", "cpu"), [1]),
        # a quantity is a string or a number: null matches both of its oneOf and so neither
        (("spec", "containers", 0, "resources", "limits", "cpu"), None),
        (("spec", "containers", 0, "resources", "limits", "memory"), True),
        (("spec", "containers", 0, "securityContext", "runAsNonRot"), True),
        (("spec", "tolerations", 0, "tolerationSeconds"), "soon"),
        (("spec", "nodeSelector"), ["not", "a", "map"]),
    ):
        bad = copy.deepcopy(pod)
        target: Any = bad
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        broken.append(bad)
    bad_claim = copy.deepcopy(claim)
    bad_claim["spec"]["accessModes"] = "ReadWriteOnce"
    broken.append(bad_claim)
    numeric = copy.deepcopy(pod)  # a quantity as a JSON number is valid too
    numeric["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 2.5
    for version in kube_schema.SUPPORTED_VERSIONS:
        for good in (pod, claim, numeric):
            kube_schema.validate(good, version)
            kube_schema.validate_upstream(good, version)
        for bad in broken:
            with pytest.raises(kube_schema.Invalid):
                kube_schema.validate(bad, version)
            with pytest.raises(jsonschema.ValidationError):
                kube_schema.validate_upstream(bad, version)


def test_placement_follows_the_profile_node_pool_and_gpu_type():
    a100 = next(r for r in ROWS if r.profile == "gpu-a100" and r.gpu == 2)
    settings, pod, claim, _ = build(a100.request)
    assert pod["spec"]["nodeSelector"] == {
        "mlfactory/node-pool": "gpu-a100",
        "cloud.google.com/gke-accelerator": "nvidia-tesla-a100",
    }
    assert pod["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert claim["spec"]["storageClassName"] == "premium-rwo"  # the pool's class
    small = next(r for r in ROWS if r.profile == "cpu-small")
    _, pod, claim, _ = build(small.request)
    assert "nodeSelector" not in pod["spec"] and "tolerations" not in pod["spec"]
    assert claim["spec"]["storageClassName"] == "standard-rwo"  # the section's class


def test_security_context_is_restricted():
    _, pod, _, _ = build(ROWS[0].request)
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000 and sc["runAsGroup"] == 100
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in sc
    assert pod["spec"]["securityContext"]["fsGroup"] == 100
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_labels_are_valid_and_annotations_carry_the_exact_session():
    user, team = "Zoë.O'Brien@Example.com", "ML Engineering/EMEA"
    request = ROWS[0].request
    settings, pod, _, ledger = build(request, user=user, team=team)
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    for key, value in labels.items():
        assert is_valid_label(value) or value == "", (key, value)
    assert labels[MANAGED] == "1"
    assert labels[KEY] == ledger["key"]
    assert labels["mlfactory.org/user"] == safe_slug(user)
    assert annotations["mlfactory.org/user"] == user
    assert annotations["mlfactory.org/team"] == team
    session = json.loads(annotations[SESSION])
    assert session["org.mlfactory.ledger-key"] == ledger["key"]
    assert session["org.mlfactory.user"] == user
    assert json.loads(session["org.mlfactory.price-per-hour"]) == request.price_per_hour
    # KubeSpawner formats these with str.format: braces must come through as themselves
    assert "{{" in settings["extra_annotations"][SESSION]


def test_named_servers_share_the_user_claim_in_their_own_folder():
    _, pod, claim, _ = build(ROWS[0].request, user="bob", server="exp-1")
    _, pod0, claim0, _ = build(ROWS[0].request, user="bob")
    assert claim["metadata"]["name"] == claim0["metadata"]["name"] == pvc_name("bob")
    assert pod["metadata"]["name"] != pod0["metadata"]["name"]
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/home/jovyan"]["subPath"] == "exp-1"
    assert "subPath" not in pod0["spec"]["containers"][0]["volumeMounts"][0]


LOOKALIKES = [
    "a" * 63,
    "a" * 64,
    "a" * 65,
    "a" * 62 + "b",
    "a" * 64 + "b",
    "Alice",
    "alice",
    "ALICE",
    "alice-",
    "alice--x",
    "alice---x",
    "alice.x",
    "alice_x",
    "alice x",
    "alicé",
    "alice@x",
    "-alice",
    "1alice",
    "x-1alice",
]


def test_names_are_valid_and_distinct_for_look_alike_users():
    """CVE-2020-15110: names that differ only in case, punctuation or after truncation must
    not share a pod or a claim (another user's home volume)."""
    pods = {u: pod_name(u) for u in LOOKALIKES}
    claims = {u: pvc_name(u) for u in LOOKALIKES}
    for name in [*pods.values(), *claims.values()]:
        assert is_valid_object_name(name) and len(name) <= 63, name
    assert len(set(pods.values())) == len(LOOKALIKES)
    assert len(set(claims.values())) == len(LOOKALIKES)
    assert pod_name("alice") == "jupyter-alice"  # a safe name is kept
    # a named server never takes another user's pod name
    assert pod_name("alice", "x") != pod_name("alice--x")
    assert pod_name("a" * 30, "b" * 30) != pod_name("a" * 30, "b" * 29 + "c")
    values = {label_value(u) for u in LOOKALIKES}
    assert len(values) == len(LOOKALIKES) and all(is_valid_label(v) for v in values)


@pytest.mark.parametrize("user", LOOKALIKES[:5] + ["Alice", "alice x"])
def test_manifests_for_long_and_odd_names_validate(user: str):
    _, pod, claim, _ = build(ROWS[0].request, user=user, server="A" * 40)
    for version in kube_schema.SUPPORTED_VERSIONS:
        kube_schema.validate(pod, version)
        kube_schema.validate(claim, version)
    assert user_server(user, "A" * 40) in pod["metadata"]["name"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"profile": "gpu-a100", "gpu": 9}, "gpu"),
        ({"profile": "gpu-a100", "gpu": 0}, "gpu"),
        ({"profile": "cpu-large", "cpu": 64}, "cpu"),
        ({"profile": "cpu-large", "memory": "1Ti"}, "memory"),
        ({"profile": "cpu-small", "image": "evil.example.org/miner:latest"}, "image"),
        ({"profile": "no-such-profile"}, "profile"),
        ({"profile": "cpu-small", "node_selector": {"x": "y"}}, "node_selector"),
    ],
)
def test_rejected_requests_never_reach_the_builder(options: dict, field: str):
    access = user_access(CONFIG, ["ml-engineering"], is_admin=False)
    with pytest.raises(RequestError) as err:
        resolve_request(CONFIG, access, options, cluster_caps(CONFIG))
    assert err.value.field == field


def test_a_group_cannot_pick_a_gpu_profile_it_is_not_given():
    access = user_access(CONFIG, ["data-science"], is_admin=False)
    with pytest.raises(RequestError) as err:
        resolve_request(CONFIG, access, {"profile": "gpu-t4"}, cluster_caps(CONFIG))
    assert err.value.field == "profile"


def test_the_builder_refuses_what_the_config_does_not_declare():
    request = next(r for r in ROWS if r.profile == "gpu-t4").request
    kube = CONFIG.kubernetes.model_copy(update={"node_pools": ()})
    bare = CONFIG.model_copy(update={"kubernetes": kube})
    with pytest.raises(KubeSpecError, match="gpu-t4"):
        kube_settings(request, bare, user="u", image="i")


def _data() -> dict:
    return yaml.safe_load(PLATFORM_FILE.read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["profiles"][3].update(node_pool="gpu-t5"),
            "profiles[3].node_pool: 'gpu-t5' is not a declared node pool",
        ),
        (
            lambda d: d["profiles"][3].update(gpu_type="nvidia-tesla-t5"),
            "profiles[3].gpu_type: 'nvidia-tesla-t5' is not a declared GPU type",
        ),
        (
            lambda d: d["kubernetes"].update(storage_class="fast"),
            "kubernetes.storage_class: 'fast' is not a declared storage class",
        ),
        (
            lambda d: d["kubernetes"]["node_pools"][1].update(storage_class="fast"),
            "kubernetes.node_pools[1].storage_class: 'fast' is not a declared storage class",
        ),
        (
            lambda d: d.pop("kubernetes"),
            "kubernetes: missing; platform.backend is 'kubernetes'",
        ),
        (
            lambda d: d["kubernetes"]["node_pools"][0].update(node_selector={"a b": "c"}),
            "kubernetes.node_pools[0].node_selector: 'a b' is not a Kubernetes label key",
        ),
    ],
)
def test_unknown_references_fail_at_start_up_with_the_key_path(change, message: str):
    data = _data()
    change(data)
    with pytest.raises(ConfigError) as err:
        parse_platform_config(data, "mlfactory.yaml")
    assert message in str(err.value), str(err.value)


def test_storage_quantities():
    assert storage_quantity(10 * GIB) == "10Gi"
    assert storage_quantity(512 * 2**20) == "512Mi"
    assert storage_quantity(10**9) == "1000000000"


def test_the_fast_serialiser_gives_the_client_json():
    """``to_dict`` (the benchmark's hot path) equals kubernetes_asyncio's own serialiser."""
    settings, _, _, _ = build(ROWS[-1].request, user="Zoë", server="exp")
    pod = make_pod(
        name="p",
        cmd=["x"],
        port=8888,
        image="i",
        env={"A": "1"},
        node_selector=settings["node_selector"],
        tolerations=settings["tolerations"],
        extra_resource_limits=settings["extra_resource_limits"],
        container_security_context=settings["container_security_context"],
        volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "c"}}],
        volume_mounts=settings["volume_mounts"],
        cpu_limit=2.0,
        mem_limit=2**30,
    )
    assert to_dict(pod) == ApiClient.__new__(ApiClient).sanitize_for_serialization(pod)
