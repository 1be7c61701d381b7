"""The resolved request as a container (pure): limits, security, labels, names, GPUs."""

from __future__ import annotations

import docker
import pytest
from mlfactory.spawner.container import with_host
from mlfactory.spawner.container_labels import KEY, session_from_labels
from mlfactory.spawner.container_spec import (
    HOME,
    container_name,
    container_spec,
    gpu_settings,
    home_volume_name,
    parse_user,
    server_dir,
    server_labels,
)
from mlfactory.spawner.journal import new_ledger
from mlfactory.spawner.profiles import ResourceRequest

GiB = 1024**3


def request(**changes) -> ResourceRequest:
    values = dict(
        profile="small",
        display_name="Small",
        cpu_guarantee=0.5,
        cpu_limit=1.5,
        mem_guarantee=GiB,
        mem_limit=2 * GiB,
        gpu=0,
        gpu_type=None,
        disk=10 * GiB,
        image="minimal",
        image_ref="mlfactory/minimal:0.1.0",
        node_pool=None,
        project="churn",
        price_per_hour=0.25,
    )
    values.update(changes)
    return ResourceRequest(**values)


def spec(req: ResourceRequest | None = None, **kwargs):
    args = dict(
        name="mlfactory-alice",
        image="127.0.0.1:5056/mlfactory/minimal@sha256:" + "a" * 64,
        command=["python", "-m", "mlfactory.spawner.singleuser"],
        env={"JUPYTERHUB_API_TOKEN": "t"},
        labels={"org.mlfactory.managed": "1"},
        home_volume="mlfactory-home-alice",
    )
    args.update(kwargs)
    return container_spec(req or request(), **args)


def test_limits_from_the_request():
    hc = spec().host_config
    assert hc["nano_cpus"] == 1_500_000_000
    assert hc["mem_limit"] == hc["memswap_limit"] == 2 * GiB  # no swap beyond memory
    assert hc["pids_limit"] == 4096
    assert "cpuset_cpus" not in hc
    assert spec(cpuset_cpus="2-3").host_config["cpuset_cpus"] == "2-3"
    assert spec(pids_limit=512).host_config["pids_limit"] == 512


def test_security_user_ulimits_and_home():
    s = spec(user="1001:100")
    hc, kw = s.host_config, s.create_kwargs
    assert hc["security_opt"] == ["no-new-privileges"]
    assert hc["cap_drop"] == ["ALL"]
    assert "privileged" not in hc and "cap_add" not in hc
    assert kw["user"] == "1001:100"
    assert {u["Name"]: (u["Soft"], u["Hard"]) for u in hc["ulimits"]} == {
        "nofile": (4096, 4096),
        "nproc": (4096, 4096),
    }
    assert hc["binds"] == {"mlfactory-home-alice": {"bind": HOME, "mode": "rw"}}
    assert kw["working_dir"] == HOME
    assert hc["port_bindings"] == {8888: ("127.0.0.1",)}  # a free port, on loopback only
    assert "network_mode" not in hc  # the engine's bridge: not the host's network
    assert hc["auto_remove"] is False  # its log must outlive a failed start
    # the image's own Python, not the hub's interpreter
    assert kw["command"] == ["python", "-m", "mlfactory.spawner.singleuser"]


def test_docker_py_accepts_the_host_config():
    client = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
    hc = client.create_host_config(
        **spec(cpuset_cpus="0", gpu_ids=[0], gpu_style="devices").host_config
    )
    assert hc["NanoCpus"] == 1_500_000_000
    assert hc["MemorySwap"] == hc["Memory"] == 2 * GiB
    assert hc["CapDrop"] == ["ALL"] and hc["SecurityOpt"] == ["no-new-privileges"]
    assert hc["Devices"][0]["PathOnHost"] == "nvidia.com/gpu=0"
    hc2 = client.create_host_config(**spec(gpu_ids=["1"], gpu_style="device_requests").host_config)
    assert hc2["DeviceRequests"][0]["Driver"] == "cdi"
    assert hc2["DeviceRequests"][0]["DeviceIDs"] == ["nvidia.com/gpu=1"]


def test_bad_user_or_limits_are_refused():
    with pytest.raises(ValueError, match="uid:gid"):
        spec(user="jovyan")
    with pytest.raises(ValueError, match="positive"):
        spec(request(mem_limit=0))


def test_gpus_as_cdi_devices():
    assert gpu_settings([], "devices") == {}
    assert gpu_settings([0, 1], "devices") == {"devices": ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]}
    requests = gpu_settings(["GPU-abc"], "device_requests")["device_requests"]
    assert requests == [
        {"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=GPU-abc"], "Capabilities": [["gpu"]]}
    ]
    assert "devices" not in spec().host_config and "device_requests" not in spec().host_config


def test_labels_carry_the_session_and_the_choice():
    req = request()
    ledger = new_ledger("Alice", "gpu-run", ["ds", "ml"], req)
    labels = server_labels(
        ledger, user="Alice", server="gpu-run", team="ds", request=req, instance="hub-1"
    )
    assert labels[KEY] == ledger["key"]
    assert labels["org.mlfactory.instance"] == "hub-1"  # which platform service bills it
    assert labels["org.mlfactory.user"] == "Alice"
    assert labels["org.mlfactory.team"] == "ds"
    assert labels["org.mlfactory.project"] == "churn"
    assert labels["org.mlfactory.profile"] == "small"
    assert labels["org.mlfactory.image"] == "minimal"
    session = session_from_labels(labels)
    assert session is not None and session.key == ledger["key"] and session.user == "Alice"
    bare = server_labels(None, user="bob", server="", team="", request=req, instance="hub-1")
    assert bare["org.mlfactory.managed"] == "1" and bare["org.mlfactory.user"] == "bob"
    assert all(isinstance(v, str) for v in labels.values())
    assert spec(labels=labels).create_kwargs["labels"] == labels


NAME_RE = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"


@pytest.mark.parametrize(
    "users",
    [
        ("alice", "Alice", "ALICE"),  # differ only in case
        ("a" * 70, "a" * 71, "a" * 63),  # differ only after truncation
        ("a.b", "a_b", "a-b", "a b", "a/b"),  # differ only in characters slugs drop
    ],
)
def test_names_are_valid_and_never_collide(users):
    import re

    containers = {container_name(u) for u in users}
    volumes = {home_volume_name(u) for u in users}
    assert len(containers) == len(volumes) == len(users)
    for name in containers | volumes:
        assert re.fullmatch(NAME_RE, name) and len(name) <= 80
    assert all(n.startswith("mlfactory-") for n in containers)
    assert all(n.startswith("mlfactory-home-") for n in volumes)


def test_named_servers_never_collide_with_users_or_each_other():
    names = {
        container_name("alice"),
        container_name("alice", "gpu"),
        container_name("alice", "GPU"),
        container_name("alice-gpu"),
    }
    # (a user named "alice/gpu" cannot exist: JupyterHub refuses "/" in user names)
    assert len(names) == 4
    assert server_dir("") == ""
    assert server_dir("gpu") == "gpu" and server_dir("GPU") != server_dir("gpu")


def test_parse_user():
    assert parse_user("1000:100") == (1000, 100)
    with pytest.raises(ValueError):
        parse_user("1000")


def test_hub_urls_rewritten_for_the_container():
    host = "host.containers.internal"
    assert with_host("http://127.0.0.1:8081/hub/api", host) == f"http://{host}:8081/hub/api"
    assert with_host("http://localhost/x", host) == f"http://{host}/x"
    assert (
        with_host("http://hub.example.org:8081/hub/api", host)
        == "http://hub.example.org:8081/hub/api"
    )


def test_journal_record_holds_the_container_id():
    from mlfactory.spawner.journal import record_of

    ledger = new_ledger("alice", "", ["ds"], request())
    record = record_of(ledger, container="f00d")
    assert (record.pid, record.pid_start, record.container) == (0, "", "f00d")
    assert record.key == ledger["key"]
