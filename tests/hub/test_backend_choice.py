"""Which backend runs servers (``choose_backend``): the config's word, then
``$MLFACTORY_BACKEND``, then whether the engine is ready; and the hub config and the start
banner follow that one decision."""

from __future__ import annotations

import uuid

import pytest
from mlfactory.hub.cli.hub import backend_banner
from mlfactory.hub.hubconfig import apply_embedded_defaults, apply_platform
from mlfactory.hub.platform_config import (
    PACKAGED_CONFIG,
    Image,
    choose_backend,
    parse_platform_config,
)
from mlfactory.spawner.engine import containers_problem
from traitlets.config import Config


def config(backend: str = "auto", engine: str = "unix:///nowhere.sock", registry: str = ""):
    import yaml

    data = yaml.safe_load(PACKAGED_CONFIG.read_text())
    data["platform"]["backend"] = backend
    data["containers"] = {"engine": engine, "registry": {"url": registry}}
    return parse_platform_config(data)


def ready(platform) -> None:
    return None


def missing(platform) -> str:
    return f"nothing answers at {platform.containers.engine}"


@pytest.mark.parametrize(
    ("backend", "env", "probe", "expected"),
    [
        ("local", {"MLFACTORY_BACKEND": "container"}, ready, "local"),
        ("container", {"MLFACTORY_BACKEND": "local"}, missing, "container"),
        ("auto", {"MLFACTORY_BACKEND": "local"}, ready, "local"),
        ("auto", {"MLFACTORY_BACKEND": "container"}, missing, "container"),
        ("auto", {}, ready, "container"),
        ("auto", {}, missing, "local"),
        ("auto", {"MLFACTORY_BACKEND": "bogus"}, missing, "local"),
    ],
)
def test_the_config_then_the_environment_then_the_engine_decide(backend, env, probe, expected):
    assert choose_backend(config(backend), probe, env)[0] == expected


def test_auto_says_why_it_stayed_local():
    backend, why = choose_backend(config(), missing, {})
    assert (backend, why) == ("local", "nothing answers at unix:///nowhere.sock")


def test_an_unreachable_engine_is_named():
    problem = containers_problem(config(engine="unix:///nowhere.sock"))
    assert problem is not None and "unix:///nowhere.sock" in problem


def test_the_hub_config_and_the_banner_follow_the_decision(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path))
    monkeypatch.delenv("MLFACTORY_BACKEND", raising=False)
    platform = config("auto", engine="unix:///nowhere.sock")
    c = Config()
    apply_embedded_defaults(c, env={}, platform=platform)
    assert c.JupyterHub.spawner_class == "mlfactory-local"
    assert "local processes" in backend_banner(platform)
    assert "unix:///nowhere.sock" in backend_banner(platform)
    c = Config()
    apply_platform(c, config("container"), env={})
    apply_embedded_defaults(c, env={}, platform=config("container"))
    assert c.JupyterHub.spawner_class == "mlfactory-docker"
    assert c.JupyterHub.template_vars["mlfactory_isolation_off"] is False
    # containers reach the hub and the service on the bridge's gateway; the proxy, loopback
    assert (c.JupyterHub.hub_ip, c.JupyterHub.hub_connect_ip) == ("0.0.0.0", "127.0.0.1")
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "mlfactory"]
    assert service["environment"]["MLFACTORY_SERVICE_BIND"] == "0.0.0.0"


def test_the_engine_with_the_default_image_in_the_registry_is_ready(container_engine, base_image):
    platform = config(engine=container_engine.url, registry=container_engine.registry)
    # a repository of its own: the test registry is shared and kept between runs
    repository = f"mlfactory-test/backend-{uuid.uuid4().hex[:10]}"
    images = [{**i.model_dump(), "image": f"{repository}:0.1.0"} for i in platform.images]
    platform = platform.model_copy(update={"images": tuple(Image(**i) for i in images)})
    problem = containers_problem(platform)
    assert problem is not None and f"{repository}:0.1.0 is not in the registry" in problem
    # a tag of that name pushed for real makes it ready
    ref = f"{container_engine.registry_location}/{repository}:0.1.0"
    container_engine.podman("tag", base_image, ref)
    container_engine.podman("push", "-q", "--tls-verify=false", ref)
    assert containers_problem(platform) is None
