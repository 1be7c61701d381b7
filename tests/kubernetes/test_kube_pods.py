"""The ledger on Kubernetes (spawner_ext/kube_pods.py): mlfactory's pods read as the engine's
containers feed the same reconcile logic, so a pod the hub forgot is billed, then stopped;
the listing pages through the API with ``limit``/``continue`` (a stand-in API server speaking
the list API's paging: no cluster runs here)."""

from __future__ import annotations

import copy
import json

import pytest
from mlfactory.service.engine_view import engine_view
from mlfactory.service.reconcile import OpenSession, engine_sightings, orphans, plan
from mlfactory.spawner.container_labels import INSTANCE as INSTANCE_LABEL
from mlfactory.spawner.journal import new_ledger
from mlfactory.spawner.kube_pods import KubeDown, KubePodView, pod_as_container, pod_status
from mlfactory.spawner.kube_spec import kube_settings, manifests

from tests.kubernetes.cases import kube_platform, rows
from tests.kubernetes.kube_api import kube_api

CONFIG = kube_platform()
REQUEST = next(r for r in rows(CONFIG) if r.profile == "gpu-t4" and r.gpu == 2).request
INSTANCE = "0123456789abcdef"


def labelled_pod(user: str = "carol", server: str = "", phase: str = "Running", **status):
    ledger = new_ledger(user, server, ["ml-engineering"], REQUEST)
    settings = kube_settings(
        REQUEST,
        CONFIG,
        user=user,
        server=server,
        team="ml-engineering",
        image="i@sha256:" + "0" * 64,
        ledger=ledger,
        instance=INSTANCE,
    )
    pod, _ = manifests(settings, user=user, server=server)
    pod["status"] = {"phase": phase, **status}
    return pod, ledger


def test_a_pod_the_hub_forgot_is_billed_then_stopped():
    pod, ledger = labelled_pod()
    seen = engine_sightings([pod_as_container(pod)], records={})
    assert len(seen) == 1
    s = seen[0]
    assert (s.key, s.user, s.running, s.starting) == (ledger["key"], "carol", True, False)
    assert s.price_per_hour == REQUEST.price_per_hour == ledger["price_per_hour"]
    assert s.profile == "gpu-t4" and s.groups == ("ml-engineering",)
    assert s.container == pod["metadata"]["name"]
    # billed: a session opens for it though neither the hub nor the journal knows it
    p = plan([], {s.key: s}, known_keys=set(), now=ledger["started"] + 60)
    assert [o.key for o in p.open] == [ledger["key"]]
    # the hub does not list it: an orphan, stopped once the grace is over
    first = orphans(seen, hub_keys=set(), marked={}, now=100, grace=600)
    assert first.found == [ledger["key"]]
    later = orphans(seen, hub_keys=set(), marked={ledger["key"]: 100}, now=800, grace=600)
    assert later.stop == [ledger["key"]]
    marked = {ledger["key"]: 100.0}
    listed = orphans(seen, hub_keys={ledger["key"]}, marked=marked, now=800, grace=600)
    assert listed.stop == [] and listed.cleared == [ledger["key"]]


def test_a_stopped_pod_closes_its_session_at_its_finish_time():
    terminated = {"terminated": {"exitCode": 0, "finishedAt": "2026-12-06T10:00:00Z"}}
    pod, ledger = labelled_pod(
        phase="Running", containerStatuses=[{"name": "notebook", "state": terminated}]
    )
    (s,) = engine_sightings([pod_as_container(pod)], records={})
    assert not s.running and s.stopped_at == 1796551200.0
    opened = OpenSession(ledger["key"], started=s.stopped_at - 3600, last_seen=s.stopped_at - 60)
    p = plan([opened], {s.key: s}, known_keys={s.key}, now=s.stopped_at + 600)
    assert p.close == [(ledger["key"], s.stopped_at, "stopped")]


@pytest.mark.parametrize(
    ("phase", "expected"),
    [("Pending", "created"), ("Running", "running"), ("Failed", "exited"), ("Unknown", "running")],
)
def test_pod_phases(phase: str, expected: str):
    pod, _ = labelled_pod(phase=phase)
    assert pod_status(pod)[0] == expected


def test_a_pending_pod_is_never_billed():
    pod, ledger = labelled_pod(phase="Pending")
    (s,) = engine_sightings([pod_as_container(pod)], records={})
    assert s.running and s.starting
    assert plan([], {s.key: s}, known_keys=set(), now=ledger["started"] + 60).open == []


def test_pods_without_a_session_of_their_own_are_left_alone():
    pod, _ = labelled_pod()
    other, _ = labelled_pod(user="dave")
    # an annotation copied from another pod: its key is not this pod's label
    copied = copy.deepcopy(other)
    copied["metadata"]["annotations"]["mlfactory.org/session"] = pod["metadata"]["annotations"][
        "mlfactory.org/session"
    ]
    bare = copy.deepcopy(pod)
    del bare["metadata"]["annotations"]["mlfactory.org/session"]
    garbled = copy.deepcopy(pod)
    garbled["metadata"]["annotations"]["mlfactory.org/session"] = "{not json"
    listed = [pod_as_container(p) for p in (copied, bare, garbled)]
    assert engine_sightings(listed, records={}) == []


async def test_the_listing_pages_through_the_api():
    pods = [labelled_pod(user=f"user-{i}")[0] for i in range(25)]
    with kube_api() as api:
        api.pods.extend(pods)
        # a pod of another hub on the same cluster: not this instance's
        foreign = copy.deepcopy(pods[0])
        foreign["metadata"]["labels"]["mlfactory.org/instance"] = "another-hub"
        api.pods.append(foreign)
        view = KubePodView(
            "mlfactory", instance=INSTANCE, configuration=api.configuration(), page=7
        )
        listed = await view.pods()
        assert [p["metadata"]["name"] for p in listed] == [p["metadata"]["name"] for p in pods]
        assert all(path == "/api/v1/namespaces/mlfactory/pods" for _, path in api.requests)
        assert len(api.requests) == 4  # 26 pods in pages of 7
        first, *rest = api.queries
        assert first["limit"] == ["7"] and "continue" not in first
        assert [q["continue"] for q in rest] == [["7"], ["14"], ["21"]]
        assert first["labelSelector"] == [
            f"mlfactory.org/instance={INSTANCE},mlfactory.org/managed=1"
        ]


def test_the_view_lists_and_removes_from_a_worker_thread():
    pod, ledger = labelled_pod()
    with kube_api() as api:
        api.pods.append(pod)
        view = KubePodView("mlfactory", instance=INSTANCE, configuration=api.configuration())
        (entry,) = view.containers()
        assert json.loads(entry["Labels"]["org.mlfactory.price-per-hour"]) == REQUEST.price_per_hour
        assert view.remove(entry["Id"]) is True
        assert api.deleted == [pod["metadata"]["name"]]


def test_an_api_that_refuses_leaves_the_pods_unknown():
    with kube_api(status=403) as api:
        view = KubePodView("mlfactory", configuration=api.configuration())
        with pytest.raises(KubeDown, match="did not answer"):
            view.containers()


def test_the_service_watches_pods_when_the_backend_is_kubernetes():
    view = engine_view(CONFIG, labels={INSTANCE_LABEL: INSTANCE})
    assert isinstance(view, KubePodView)
    assert view.namespace == "mlfactory"
    assert view.labels == {"mlfactory.org/managed": "1", "mlfactory.org/instance": INSTANCE}
