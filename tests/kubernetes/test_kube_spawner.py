"""The Kubernetes spawner behind a real JupyterHub (real proxy, real platform service): a REST
spawn beyond the profile's limits is a 400 and no Kubernetes API call is made; a valid one
reaches the API. In-process, the spawner's own pod and claim (KubeSpawner's
``get_pod_manifest``/``get_pvc_manifest`` after the builder's settings) are the builder's and
validate against the Kubernetes schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import kubernetes_asyncio.config
import pytest
import yaml
from kubespawner import spawner as kubespawner_module
from mlfactory.spawner.journal import new_ledger
from mlfactory.spawner.kube_spec import manifests, to_dict
from mlfactory.spawner.kubernetes import MLFactoryKubeSpawner
from mlfactory.spawner.profiles import resolve_request, user_access

from tests.e2e.conftest import discard_hub, prepare_hub, start_hub
from tests.e2e.helpers import HubClient, poll
from tests.kubernetes import kube_schema
from tests.kubernetes.cases import PLATFORM_FILE, cluster_caps, kube_platform
from tests.kubernetes.kube_api import kube_api

SPAWNER = "mlfactory.spawner.kubernetes.MLFactoryKubeSpawner"


def platform_data() -> dict:
    data = yaml.safe_load(PLATFORM_FILE.read_text())
    data["containers"]["registry"]["url"] = ""  # images by name: no registry here
    return data


@pytest.fixture(scope="module")
def kube_hub(tmp_path_factory) -> Iterator[tuple]:
    with kube_api(status=403) as api:
        kubeconfig = api.kubeconfig(tmp_path_factory.mktemp("kube") / "config")
        data, config_path = prepare_hub("kubernetes", platform_data())
        old = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = str(kubeconfig)  # read by the hub process we start
        try:
            hub = start_hub(data, f"--JupyterHub.spawner_class={SPAWNER}", config=config_path)
        finally:
            if old is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = old
        try:
            yield hub, api
        finally:
            discard_hub(hub, config_path)


def new_user(admin: HubClient, group: str = "ml-engineering") -> str:
    name = f"k8s-{uuid.uuid4().hex[:8]}"
    assert admin.post(f"/hub/api/users/{name}").status_code == 201
    r = admin.post(f"/hub/api/groups/{group}/users", json={"users": [name]})
    assert r.status_code == 200, r.text
    return name


@pytest.mark.hub
def test_a_spawn_beyond_the_profile_limits_is_a_400_and_reaches_no_api(kube_hub):
    hub, api = kube_hub
    admin = HubClient(hub)
    user = new_user(admin)
    for body, field in (
        ({"profile": "gpu-a100", "gpu": 9}, "gpu"),
        ({"profile": "cpu-large", "cpu": 64}, "cpu"),
        ({"profile": "cpu-large", "memory": "1Ti"}, "memory"),
        ({"profile": "gpu-t4", "image": "evil.example.org/miner:latest"}, "image"),
    ):
        r = admin.start("", body, user)
        assert r.status_code == 400, r.text
        assert f"Invalid choice for {field}" in r.json()["message"], r.text
    assert "" not in admin.servers(user)
    assert api.requests == [], api.requests  # no pod, no claim, not even a listing

    # the control: an allowed request does reach the Kubernetes API (the stand-in refuses it)
    r = admin.start("", {"profile": "cpu-small"}, user)
    assert r.status_code in (202, 500), r.text
    poll(lambda: api.requests, timeout=60, what="the spawner's first Kubernetes API call")
    assert any(path.startswith("/api/v1/namespaces/mlfactory/") for _, path in api.requests)


@pytest.mark.hub
def test_gpu_profiles_are_offered_though_the_hub_machine_has_no_gpu(kube_hub):
    """On Kubernetes GPUs come from the cluster's pools: a 4-GPU request is admitted (the
    local backend refuses it on this GPU-less machine)."""
    hub, _ = kube_hub
    admin = HubClient(hub)
    user = new_user(admin)
    r = admin.start("", {"profile": "gpu-a100", "gpu": 4}, user)
    # admitted: the spawn goes on to the (refusing) stand-in API instead of a 400
    assert r.status_code in (202, 500), r.text
    r = admin.start("", {"profile": "gpu-a100", "gpu": 9}, user)
    assert r.status_code == 400 or "pending" in r.text, r.text


@pytest.fixture
def loaded_kubeconfig(tmp_path, monkeypatch):
    """KubeSpawner's client configured for a stand-in API that must never be called."""
    with kube_api(status=403) as api:
        path = api.kubeconfig(tmp_path / "config")
        yield api, path


async def test_the_spawner_builds_the_builder_pod(loaded_kubeconfig, monkeypatch, tmp_path):
    api, path = loaded_kubeconfig
    await kubernetes_asyncio.config.load_kube_config(config_file=str(path))
    # KubeSpawner loads the default kubeconfig location in __init__: use the one just loaded
    monkeypatch.setattr(kubespawner_module, "load_config", lambda **kw: None)
    config_file = tmp_path / "mlfactory.yaml"
    config_file.write_text(PLATFORM_FILE.read_text())
    platform = kube_platform()
    group = SimpleNamespace(name="ml-engineering")
    user = SimpleNamespace(
        name="Zoë {x}", id=7, url="/user/zoe/", groups=[group], admin=False, escaped_name="z"
    )
    spawner = MLFactoryKubeSpawner(
        user=user,
        orm_spawner=SimpleNamespace(name="exp 1", user_options={}, server=None),
        _mock=True,
        platform_config_file=str(config_file),
    )
    access = user_access(platform, ["ml-engineering"], False)
    request = resolve_request(
        platform, access, {"profile": "gpu-a100", "gpu": 4}, cluster_caps(platform)
    )
    spawner.ledger = new_ledger(user.name, "exp 1", ["ml-engineering"], request)
    image = "registry.example.com/mlfactory/pytorch@sha256:" + "ab" * 32
    settings = spawner.apply_request(request, image)
    pod = to_dict(await spawner.get_pod_manifest())
    claim = to_dict(spawner.get_pvc_manifest())
    built_pod, built_claim = manifests(settings, user=user.name, server="exp 1")
    for key in ("nodeSelector", "tolerations", "securityContext"):
        assert pod["spec"].get(key) == built_pod["spec"].get(key), key
    container, built = pod["spec"]["containers"][0], built_pod["spec"]["containers"][0]
    for key in ("resources", "securityContext", "image", "volumeMounts", "workingDir"):
        assert container[key] == built[key], key
    assert pod["spec"]["volumes"] == built_pod["spec"]["volumes"]
    assert pod["metadata"]["name"] == built_pod["metadata"]["name"]
    for key, value in built_pod["metadata"]["labels"].items():
        assert pod["metadata"]["labels"][key] == value, key
    for key, value in built_pod["metadata"]["annotations"].items():
        assert pod["metadata"]["annotations"][key] == value, key  # braces survived
    assert claim["spec"] == built_claim["spec"]
    assert claim["metadata"]["name"] == built_claim["metadata"]["name"]
    pod["metadata"]["namespace"] = claim["metadata"]["namespace"] = spawner.namespace
    for version in kube_schema.SUPPORTED_VERSIONS:
        kube_schema.validate(pod, version)
        kube_schema.validate(claim, version)
    assert spawner.namespace == "mlfactory"
    assert api.requests == []
    assert Path(spawner.platform_config_file) == config_file
