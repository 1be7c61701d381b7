"""The Kubernetes deployment files: deploy/helm/values-mlfactory.yaml and its doc.

The values file is checked for what scale to zero depends on (no z2jh culler, a tainted
user pool that user pods must use, no placeholders, no continuous pre-puller, user pods
never evicted), for a pool per ``node_pool`` of the shipped platform config, and for its
``hub.extraConfig`` actually configuring a hub. The doc's links must point at files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from mlfactory.hub.platform_config import load_platform_config, parse_platform_config
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "deploy" / "helm" / "values-mlfactory.yaml"
DOCKERFILE = ROOT / "deploy" / "helm" / "Dockerfile.hub"
DOC = ROOT / "docs" / "kubernetes-scale-to-zero.md"
SHIPPED_CONFIG = ROOT / "hub_config" / "mlfactory.yaml"

USER_TAINT = ("hub.jupyter.org/dedicated", "user", "NoSchedule")
GPU_TAINT_KEY = "nvidia.com/gpu"

# Every chart key the values file sets, each checked against z2jh's values.schema.yaml
# (4.4.0 and main, 2026-07). Add a key here only after finding it in the chart's schema.
Z2JH_KEYS = {
    "hub.image.name",
    "hub.image.tag",
    "hub.db.type",
    "hub.db.url",
    "hub.db.upgrade",
    "hub.config",
    "hub.allowNamedServers",
    "hub.namedServerLimitPerUser",
    "hub.extraEnv",
    "hub.extraVolumes",
    "hub.extraVolumeMounts",
    "hub.extraConfig",
    "proxy.chp.resources",
    "singleuser.image.name",
    "singleuser.image.tag",
    "singleuser.cpu.guarantee",
    "singleuser.cpu.limit",
    "singleuser.memory.guarantee",
    "singleuser.memory.limit",
    "singleuser.storage.capacity",
    "singleuser.extraAnnotations",
    "singleuser.nodeSelector",
    "singleuser.extraTolerations",
    "scheduling.userScheduler.enabled",
    "scheduling.podPriority.enabled",
    "scheduling.userPlaceholder.enabled",
    "scheduling.userPlaceholder.replicas",
    "scheduling.userPods.tolerations",
    "scheduling.userPods.nodeAffinity.matchNodePurpose",
    "scheduling.corePods.nodeAffinity.matchNodePurpose",
    "prePuller.hook.enabled",
    "prePuller.continuous.enabled",
    "cull.enabled",
    "custom",
    # issue 19; every key is also validated against the vendored chart schema
    # (tests/kubernetes/test_helm_values.py)
    "hub.service.extraPorts",
    "hub.networkPolicy.ingress",
    "proxy.chp.networkPolicy.egress",
    "singleuser.cmd",
    "singleuser.storage.type",
    "singleuser.networkPolicy.enabled",
    "singleuser.networkPolicy.egress",
    "singleuser.networkPolicy.egressAllowRules.cloudMetadataServer",
    "singleuser.networkPolicy.egressAllowRules.dnsPortsCloudMetadataServer",
    "singleuser.networkPolicy.egressAllowRules.dnsPortsKubeSystemNamespace",
    "singleuser.networkPolicy.egressAllowRules.dnsPortsPrivateIPs",
    "singleuser.networkPolicy.egressAllowRules.nonPrivateIPs",
    "singleuser.networkPolicy.egressAllowRules.privateIPs",
}
# Free-form subtrees: the chart passes them through without a schema of their own.
FREE_FORM = {
    "custom",
    "hub.config",
    "hub.extraEnv",
    "hub.extraConfig",
    "proxy.chp.resources",
    "singleuser.extraAnnotations",
    "singleuser.nodeSelector",
}


@pytest.fixture(scope="module")
def values() -> dict:
    data = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def pools(values) -> list[dict]:
    return values["custom"]["mlfactory"]["nodePools"]


def _paths(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in FREE_FORM:
            out |= _paths(value, path + ".")
        else:
            out.add(path)
    return out


def _taint(spec: str) -> tuple[str, str, str]:
    key_value, effect = spec.rsplit(":", 1)
    key, _, value = key_value.partition("=")
    return key.replace("hub.jupyter.org_", "hub.jupyter.org/"), value, effect


def _tolerates(tolerations: list[dict], key: str, value: str | None, effect: str) -> bool:
    keys = {key, key.replace("hub.jupyter.org/", "hub.jupyter.org_")}
    for t in tolerations or []:
        if t.get("key") not in keys or t.get("effect", effect) != effect:
            continue
        if t.get("operator") == "Exists" or t.get("value") == value:
            return True
    return False


# --- the chart keys ------------------------------------------------------------------------------


def test_values_file_parses_and_uses_only_checked_chart_keys(values):
    unknown = _paths(values) - Z2JH_KEYS
    assert not unknown, f"keys not checked against the z2jh schema: {sorted(unknown)}"


def test_z2jh_culler_is_off(values):
    # mlfactory's platform service does idle shutdown; two cullers would fight
    assert values["cull"]["enabled"] is False


def test_user_pods_tolerate_the_user_taint_and_require_the_user_pool(values):
    user_pods = values["scheduling"]["userPods"]
    assert _tolerates(user_pods["tolerations"], *USER_TAINT)
    assert user_pods["nodeAffinity"]["matchNodePurpose"] == "require"
    # core pods (hub, proxy, user-scheduler) must not land on the pools that scale to zero
    core = values["scheduling"].get("corePods", {})
    assert not _tolerates(core.get("tolerations", []), *USER_TAINT)
    # a GPU toleration for every user pod would let CPU servers hold GPU nodes
    assert not any(
        t.get("key") == GPU_TAINT_KEY
        for t in user_pods["tolerations"] + (values["singleuser"].get("extraTolerations") or [])
    )


def test_nothing_holds_a_user_node_when_nobody_works(values):
    scheduling = values["scheduling"]
    assert scheduling["userPlaceholder"]["replicas"] == 0
    assert scheduling["userScheduler"]["enabled"] is True
    assert values["prePuller"]["continuous"]["enabled"] is False


def test_running_servers_are_never_evicted(values):
    annotations = values["singleuser"]["extraAnnotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"


def test_removed_named_servers_keep_their_volume(values):
    # idle shutdown removes long-unused named servers and promises their files stay;
    # KubeSpawner's default (delete_pvc: true) would delete the volume with the server
    assert values["hub"]["config"]["KubeSpawner"]["delete_pvc"] is False


def test_hub_database_is_postgres(values):
    db = values["hub"]["db"]
    assert db["type"] == "postgres" and db["url"].startswith("postgresql")
    assert "password" not in db or not db["password"]  # never a password in the shipped file


# --- node pools ----------------------------------------------------------------------------------


def test_every_node_pool_of_the_shipped_config_has_a_pool(pools):
    platform = load_platform_config(SHIPPED_CONFIG)
    by_name = {p["name"]: p for p in pools}
    doc = DOC.read_text(encoding="utf-8")
    wanted = {p.node_pool for p in platform.profiles if p.node_pool}
    assert wanted, "the shipped config names no node_pool: this test would prove nothing"
    for profile in platform.profiles:
        if not profile.node_pool:
            continue
        pool = by_name.get(profile.node_pool)
        assert pool, f"profile {profile.slug}: no pool {profile.node_pool!r} in the values"
        assert pool["nodeSelector"].get("mlfactory/node-pool") == profile.node_pool
        assert f"`{profile.node_pool}`" in doc, f"pool {profile.node_pool} not in the doc"
        gpus = profile.gpu or (profile.adjustable and profile.adjustable.gpu)
        if gpus:
            assert GPU_TAINT_KEY in {_taint(t)[0] for t in pool["taints"]}
            assert _tolerates(pool["tolerations"], GPU_TAINT_KEY, "present", "NoSchedule")
    # profiles without a node_pool need the default user pool
    assert any("mlfactory/node-pool" not in p["nodeSelector"] for p in pools)


def test_every_user_pool_can_go_to_zero(pools):
    for pool in pools:
        assert pool["minNodes"] == 0, pool["name"]
        assert pool["nodeSelector"]["hub.jupyter.org/node-purpose"] == "user", pool["name"]
        assert USER_TAINT in {_taint(t) for t in pool["taints"]}, pool["name"]


# --- the hub's configuration ---------------------------------------------------------------------


def test_platform_config_is_mounted_where_the_hub_reads_it(values):
    hub = values["hub"]
    (mount,) = [m for m in hub["extraVolumeMounts"] if m["name"] == "mlfactory-config"]
    (volume,) = [v for v in hub["extraVolumes"] if v["name"] == "mlfactory-config"]
    assert volume["configMap"]["name"]
    assert hub["extraEnv"]["MLFACTORY_CONFIG"] == f"{mount['mountPath']}/mlfactory.yaml"


def _run_extra_config(values, monkeypatch, tmp_path, config_file: Path) -> Config:
    for name, value in values["hub"]["extraEnv"].items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFACTORY_CONFIG", str(config_file))
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PGPASSWORD", "from-hub-db-password")
    c = Config()
    # what the chart's jupyterhub_config.py has set by the time extraConfig runs
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    for _, snippet in sorted(values["hub"]["extraConfig"].items()):
        exec(compile(snippet, "hub.extraConfig", "exec"), {"c": c})  # noqa: S102
    return c


def test_extra_config_applies_the_platform_and_nothing_embedded(values, monkeypatch, tmp_path):
    c = _run_extra_config(values, monkeypatch, tmp_path, SHIPPED_CONFIG)
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "mlfactory"]
    assert service["url"].endswith(":" + values["hub"]["extraEnv"]["MLFACTORY_SERVICE_PORT"])
    assert service["environment"]["MLFACTORY_CONFIG"] == str(SHIPPED_CONFIG)
    assert service["environment"]["PGPASSWORD"] == "from-hub-db-password"
    assert "mlfactory-service" in {r["name"] for r in c.JupyterHub.load_roles}
    assert c.JupyterHub.allow_named_servers is True
    # the one-machine defaults stay out: the chart owns spawner, proxy, database and auth
    for trait in ("spawner_class", "authenticator_class", "db_url", "bind_url"):
        assert trait not in c.JupyterHub, trait


def test_extra_config_refuses_a_bad_platform_config(values, monkeypatch, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: []\nimages: []\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="platform config is invalid"):
        _run_extra_config(values, monkeypatch, tmp_path, bad)


def test_database_url_example_is_a_real_platform_setting():
    """The doc's `accounting.database_url` snippet validates against the config schema."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    (snippet,) = [yaml.safe_load(b) for b in blocks if b.lstrip().startswith("accounting:")]
    raw = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    raw["accounting"] = {**raw.get("accounting", {}), **snippet["accounting"]}
    config = parse_platform_config(raw)
    assert config.accounting.database_url.startswith("postgresql")
    assert "database_url: postgresql" in VALUES.read_text(encoding="utf-8")


def test_hub_image_is_the_chart_image_plus_mlfactory():
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM quay\.io/jupyterhub/k8s-hub:", text, re.M)
    assert re.search(r"pip install .*mlfactory", text)


# --- links ---------------------------------------------------------------------------------------


def test_doc_links_resolve():
    links = re.findall(r"\]\(([^)\s]+)\)", DOC.read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert local, "the doc links to no repository file"
    for link in local:
        target = (DOC.parent / link.split("#", 1)[0]).resolve()
        assert target.exists(), f"{DOC.name}: broken link {link}"
        assert ROOT in target.parents, f"{DOC.name}: {link} leaves the repository"


def test_paths_named_in_the_deploy_files_exist():
    for source in (VALUES, DOCKERFILE):
        text = source.read_text(encoding="utf-8")
        named = set(re.findall(r"\b((?:docs|deploy|hub_config)/[\w./-]+\.\w+)", text))
        assert named, source
        for path in named:
            assert (ROOT / path).exists(), f"{source.name} names {path}, which does not exist"


def test_values_point_at_the_doc():
    assert os.path.relpath(DOC, ROOT) in VALUES.read_text(encoding="utf-8")
