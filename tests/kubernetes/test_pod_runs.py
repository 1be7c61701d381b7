"""The generated pod runs: the builder's pod manifest and its claim, run with ``podman kube
play`` (the claim becomes a Podman volume) from the minimal workspace image built from this
checkout. The single-user server inside starts as the manifest's non-root user with its
memory limit, reaches a real test hub's API with its token, and its server extension
answers. The closest these machines get to a kubelet: it catches commands, environment,
ports and users that schema validation cannot."""

from __future__ import annotations

import importlib.metadata
import json
import uuid
from collections.abc import Iterator

import pytest
import requests
import yaml
from mlfactory.spawner.journal import new_ledger
from mlfactory.spawner.kube_spec import kube_settings, manifests

from tests.e2e.conftest import discard_hub, prepare_hub, start_hub
from tests.e2e.helpers import HubClient, poll
from tests.kubernetes.cases import cluster_caps, kube_platform, rows
from tests.ports import free_port

pytestmark = [pytest.mark.hub]
# Podman 4.3 refuses annotation values over 63 characters (it checks them as labels;
# Kubernetes allows 256 KiB in all): the session annotation is left out of the pod it plays.
PODMAN_ANNOTATION_MAX = 63


@pytest.fixture(scope="module")
def hub_for_pods() -> Iterator:
    data, config_path = prepare_hub("kube-pods")
    hub_port = free_port()
    # the pod reaches the hub's API on the bridge's gateway; the proxy keeps loopback
    hub = start_hub(
        data,
        "--JupyterHub.hub_ip=0.0.0.0",
        "--JupyterHub.hub_connect_ip=127.0.0.1",
        config=config_path,
        hub_port=hub_port,
    )
    try:
        yield hub, hub_port
    finally:
        discard_hub(hub, config_path)


def playable(pod: dict, claim: dict, host_port: int) -> str:
    """The manifests as ``podman kube play`` takes them: the notebook port published on
    loopback, the pod not restarted (a failed start must show), and the annotations Podman
    4.3 refuses (see PODMAN_ANNOTATION_MAX) left out."""
    pod = json.loads(json.dumps(pod))
    pod["spec"]["restartPolicy"] = "Never"
    (port,) = pod["spec"]["containers"][0]["ports"]
    port.update(hostPort=host_port, hostIP="127.0.0.1")
    meta = pod["metadata"]
    meta["annotations"] = {
        k: v for k, v in meta["annotations"].items() if len(v) <= PODMAN_ANNOTATION_MAX
    }
    return yaml.safe_dump_all([claim, pod])


def test_the_generated_pod_runs_a_server_that_reaches_the_hub(
    hub_for_pods, container_engine, minimal_image, tmp_path
):
    hub, hub_port = hub_for_pods
    admin = HubClient(hub)
    user = f"kp-{uuid.uuid4().hex[:6]}"
    assert admin.post(f"/hub/api/users/{user}").status_code == 201
    r = admin.post(f"/hub/api/users/{user}/tokens", json={"note": "pod"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]

    config = kube_platform()
    row = next(x for x in rows(config) if x.profile == "cpu-small")
    request = row.request
    assert cluster_caps(config).gpu_count >= request.gpu
    ledger = new_ledger(user, "", ["data-science"], request)
    settings = kube_settings(
        request, config, user=user, team="data-science", image=minimal_image, ledger=ledger
    )
    prefix = f"/user/{user}/"
    api_url = f"http://host.containers.internal:{hub_port}/hub/api"
    env = {
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
        "JUPYTERHUB_API_URL": api_url,
        "JUPYTERHUB_ACTIVITY_URL": f"{api_url}/users/{user}/activity",
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:8888{prefix}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(
            [f"access:servers!server={user}/", f"access:servers!user={user}"]
        ),
        "JUPYTERHUB_OAUTH_SCOPES": json.dumps([f"access:servers!server={user}/"]),
        "MLFACTORY_HUB_VERSION": importlib.metadata.version("mlfactory"),
    }
    pod, claim = manifests(settings, user=user, env=env)
    host_port = free_port()
    path = tmp_path / "pod.yaml"
    path.write_text(playable(pod, claim, host_port))
    name, volume = pod["metadata"]["name"], claim["metadata"]["name"]
    try:
        played = container_engine.podman("kube", "play", str(path), check=False)
        assert played.returncode == 0, played.stderr
        base = f"http://127.0.0.1:{host_port}{prefix}"
        headers = {"Authorization": f"token {token}"}

        def answered():
            try:
                return requests.get(f"{base}api/status", headers=headers, timeout=5)
            except requests.ConnectionError:
                logs = container_engine.podman("logs", f"{name}-notebook", check=False)
                assert (
                    "Exited"
                    not in container_engine.podman(
                        "ps", "-a", "--filter", f"name={name}-notebook", "--format", "{{.Status}}"
                    ).stdout
                ), logs.stdout + logs.stderr
                return None

        # the server checks the token with the hub's API: a 200 is the hub answering it
        status = poll(answered, timeout=120, what="the pod's server answering")
        assert status.status_code == 200, status.text
        bad = requests.get(f"{base}api/status", headers={"Authorization": "token nope"}, timeout=30)
        assert bad.status_code in (401, 403)
        info = requests.get(f"{base}mlfactory/api/info", headers=headers, timeout=30)
        assert info.status_code == 200, info.text
        assert isinstance(info.json(), dict)
        whoami = container_engine.podman("exec", f"{name}-notebook", "id", "-u").stdout.strip()
        assert whoami == str(settings["uid"]) != "0"
        memory = container_engine.podman(
            "exec",
            f"{name}-notebook",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        ).stdout.strip()
        assert int(memory) == request.mem_limit
        home = container_engine.podman(
            "exec", f"{name}-notebook", "sh", "-c", "touch /home/jovyan/.w && echo ok"
        ).stdout.strip()
        assert home == "ok"
    finally:
        container_engine.podman("kube", "down", str(path), check=False)
        container_engine.podman("volume", "rm", "-f", volume, check=False)
