"""deploy/helm/: the values for Zero to JupyterHub, validated against the chart's own
values.schema.json (vendored, 4.4.0) after merging them onto the chart's defaults as Helm
does; the platform config they mount; and what they promise: the spawner, the services
reachable from user pods and nothing else, pools that match the platform config."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from traitlets.config import Config

from tests.kubernetes.cases import PLATFORM_FILE, kube_platform

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "deploy" / "helm"
CHART = HELM / "z2jh-4.4.0"
VALUES = HELM / "values-mlfactory.yaml"


def helm_merge(base: Any, override: Any) -> Any:
    """Helm's coalescing of a values file onto the chart's: maps merge key by key, anything
    else replaces, and ``null`` removes the chart's key."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = helm_merge(out.get(key), value)
    return out


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


@pytest.fixture(scope="module")
def merged(values) -> dict:
    return helm_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)


@pytest.fixture(scope="module")
def chart_schema() -> jsonschema.Validator:
    schema = json.loads((CHART / "values.schema.json").read_text())
    return jsonschema.Draft7Validator(schema)


def test_the_values_validate_against_the_chart_schema(merged, chart_schema):
    problems = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in chart_schema.iter_errors(merged)
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("hub", "networkPolicy", "ingres"), []),  # a typo
        (("singleuser", "networkPolicy", "egressAllowRules", "nonPrivateIPs"), "no"),
        (("scheduling", "userScheduler", "enabled"), "yes"),
        (("hub", "service", "extraPorts"), {"name": "mlfactory"}),
    ],
)
def test_the_schema_catches_mistakes(merged, chart_schema, path, value):
    """The vendored schema is strict enough to matter: each of these mistakes is an error."""
    broken = copy.deepcopy(merged)
    target = broken
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert list(chart_schema.iter_errors(broken))


def test_the_vendored_files_name_their_source():
    note = (CHART / "SOURCE.md").read_text()
    assert "zero-to-jupyterhub-k8s" in note and "4.4.0" in note
    assert "values.schema.yaml" in note and "generate-json-schema.py" in note
    assert "--version 4.4.0" in VALUES.read_text()


def test_user_pods_reach_only_the_hub_the_proxy_and_the_services(values, merged):
    rules = merged["singleuser"]["networkPolicy"]
    assert rules["enabled"] is True
    allow = rules["egressAllowRules"]
    for rule in ("nonPrivateIPs", "privateIPs", "cloudMetadataServer"):
        assert allow[rule] is False, rule
    (egress,) = rules["egress"]
    assert {p["port"] for p in egress["ports"]} == {10101, 10102}
    assert egress["to"] == [{"podSelector": {"matchLabels": {"component": "hub"}}}]
    ports = {p["name"]: p["port"] for p in merged["hub"]["service"]["extraPorts"]}
    platform = kube_platform().kubernetes
    assert ports == {
        "mlfactory": platform.platform_service.port,
        "models": platform.models_service.port,
    }
    assert merged["hub"]["extraEnv"]["MLFACTORY_SERVICE_URL"] == platform.platform_service.url
    (ingress,) = merged["hub"]["networkPolicy"]["ingress"]
    assert {p["port"] for p in ingress["ports"]} == {10101, 10102}
    # user pods carry the label that rule admits (the chart's default, kept)
    assert merged["singleuser"]["extraLabels"]["hub.jupyter.org/network-access-hub"] == "true"


def test_culler_off_scheduler_on_pools_scale_to_zero(merged):
    assert merged["cull"]["enabled"] is False
    assert merged["scheduling"]["userScheduler"]["enabled"] is True
    assert merged["scheduling"]["userPlaceholder"]["replicas"] == 0
    for pool in merged["custom"]["mlfactory"]["nodePools"]:
        assert pool["minNodes"] == 0, pool["name"]


def test_the_cloud_pools_match_the_platform_config(values):
    """Each node pool the spawner sends pods to is a pool to create, with the same labels
    and tolerations (else GPU pods stay Pending forever)."""
    platform = kube_platform()
    pools = {p["name"]: p for p in values["custom"]["mlfactory"]["nodePools"]}
    declared = platform.kubernetes.node_pools
    assert {p.name for p in declared} <= set(pools)
    for pool in declared:
        cloud = pools[pool.name]
        for key, value in pool.node_selector.items():
            assert cloud["nodeSelector"][key] == value, pool.name
        wanted = [t.model_dump(exclude_none=True, exclude_defaults=True) for t in pool.tolerations]
        have = [{k: v for k, v in t.items() if v} for t in cloud["tolerations"]]
        assert all(w.items() <= h.items() for w, h in zip(wanted, have, strict=True)), pool.name
    # every GPU profile runs on a GPU pool
    for profile in platform.profiles:
        if profile.gpu:
            assert profile.node_pool in pools, profile.slug


def test_extra_config_selects_the_kubernetes_spawner(values, monkeypatch, tmp_path):
    """The chart runs hub.extraConfig after its own config: with the Kubernetes platform
    config it selects mlfactory-kubernetes, wires the budget gate and binds the service
    where user pods reach it."""
    for name, value in values["hub"]["extraEnv"].items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFACTORY_CONFIG", str(PLATFORM_FILE))
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner"  # what the chart sets
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    for _, snippet in sorted(values["hub"]["extraConfig"].items()):
        exec(compile(snippet, "hub.extraConfig", "exec"), {"c": c})  # noqa: S102
    assert c.JupyterHub.spawner_class == "mlfactory-kubernetes"
    assert c.MLFactoryKubeSpawner.budget_check is not None
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "mlfactory"]
    assert service["url"] == "http://hub:10101"
    assert service["environment"]["MLFACTORY_SERVICE_BIND"] == "0.0.0.0"
    assert c.Spawner.environment["MLFACTORY_SERVICE_URL"] == "http://hub:10101/services/mlfactory"


def test_the_secret_comes_from_a_secret_not_the_configmap(values):
    ref = values["hub"]["extraEnv"]["MLFACTORY_SERVICE_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "mlfactory-secrets", "key": "service-secret"}
    assert "secret" not in PLATFORM_FILE.read_text().lower().replace("secrets", "")


def test_the_smoke_script_covers_every_step():
    script = (ROOT / "deploy" / "k8s-smoke.sh").read_text()
    for step in (
        "helm upgrade --install",
        "/hub/api/users",
        "for profile in",
        "resources",
        "DELETE",
        "scale to zero",
    ):
        assert step in script, step
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
