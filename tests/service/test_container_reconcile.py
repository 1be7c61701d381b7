"""The engine's view of containers, pure: a labelled container (the dicts below were captured
from Podman's Docker-compatible API, trimmed to the fields that matter) with its journal
record, if any, becomes one sighting; a container mlfactory did not label, or whose labels
are malformed, is left alone; orphan marks survive an engine that cannot be asked."""

from __future__ import annotations

import copy
from datetime import datetime

import pytest
from mlfactory.service.engine_view import engine_view
from mlfactory.service.reconcile import (
    Sighting,
    container_sighting,
    engine_sightings,
    merge,
    orphans,
    plan,
)
from mlfactory.spawner.container_labels import session_from_labels, session_labels
from mlfactory.spawner.journal import Record

from .helpers import platform_with

KEY = "c" * 16
STARTED = 1794312000.0
LABELS = {
    "org.mlfactory.groups": '["team-a"]',
    "org.mlfactory.ledger-key": KEY,
    "org.mlfactory.managed": "1",
    "org.mlfactory.price-per-hour": "2.0",
    "org.mlfactory.profile": "small",
    "org.mlfactory.project": "p",
    "org.mlfactory.resources": '{"cpu": 1}',
    "org.mlfactory.server-name": "",
    "org.mlfactory.started": "1794312000.0",
    "org.mlfactory.team": "team-a",
    "org.mlfactory.user": "ann",
}
RUNNING_ID = "892dae4387aab3db5a12a38c6b14f2c1bb431a02b5e81bf64d3dd2e8d3746b31"
EXITED_ID = "be6abb909a02aeec3bb5367bd348f2bfa9a74ff40ce8d93c5892306cb0354a7d"

# GET /containers/json?all=1 (docker-py's APIClient.containers), a running container
LISTED_RUNNING = {
    "Id": RUNNING_ID,
    "Names": ["/tender_lamport"],
    "Image": "localhost/mlfactory/base:bookworm-01f28c07c1f9",
    "Command": "sleep 600",
    "Created": 1796523869,
    "State": "running",
    "Status": "Up 1 second",
    "Labels": LABELS,
    "Config": None,
}
# the same list, an exited container (the list has no finish time)
LISTED_EXITED = {
    **LISTED_RUNNING,
    "Id": EXITED_ID,
    "Command": "true",
    "State": "exited",
    "Status": "Exited (0) 1 second ago",
}
# GET /containers/{id}/json (APIClient.inspect_container), an exited container
INSPECT_EXITED = {
    "Id": EXITED_ID,
    "Created": "2026-12-06T02:24:29.584033126Z",
    "Name": "/keen_dewdney",
    "State": {
        "Status": "exited",
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": "2026-12-06T02:24:29.846918761Z",
        "FinishedAt": "2026-12-06T02:24:29.863721073Z",
        "Health": {"Status": "", "FailingStreak": 0, "Log": None},
    },
    "Config": {"Labels": LABELS, "Image": "localhost/mlfactory/base:bookworm-01f28c07c1f9"},
}
FINISHED = datetime.fromisoformat("2026-12-06T02:24:29.863721Z").timestamp()
# the same inspect dict while it ran: the engine's zero time as its finish
INSPECT_RUNNING = {
    **INSPECT_EXITED,
    "Id": RUNNING_ID,
    "State": {
        **INSPECT_EXITED["State"],
        "Status": "running",
        "Running": True,
        "Pid": 15540,
        "FinishedAt": "0001-01-01T00:00:00Z",
    },
}


def record(**kw) -> Record:
    fields = {"pid": 0, "container": RUNNING_ID, "ready": True, **kw}
    return Record(KEY, "ann", "", STARTED, 2.0, project="p", profile="small", **fields)


def with_labels(base: dict, **changes: str | None) -> dict:
    c = copy.deepcopy(base)
    labels = c["Labels"] if "Labels" in c else c["Config"]["Labels"]
    for k, v in changes.items():
        if v is None:
            labels.pop(k, None)
        else:
            labels[k] = v
    return c


def test_the_labels_are_the_ones_the_container_backend_writes():
    ledger = {
        "key": KEY,
        "user": "ann",
        "server_name": "",
        "started": STARTED,
        "price_per_hour": 2.0,
        "project": "p",
        "profile": "small",
        "resources": {"cpu": 1},
        "groups": ["team-a"],
    }
    assert session_labels(ledger, "team-a") == LABELS


@pytest.mark.parametrize("container", [LISTED_RUNNING, INSPECT_RUNNING], ids=["list", "inspect"])
def test_a_running_container_nobody_remembers_is_billed_from_its_label(container):
    s = container_sighting(container)
    assert s == Sighting(
        **vars(session_from_labels(LABELS)),
        running=True,
        stopped_at=None,
        source="engine",
        starting=False,
        never_ready=False,
        container=RUNNING_ID,
    )
    assert s.started == STARTED and s.price_per_hour == 2.0 and s.groups == ("team-a",)


def test_the_record_says_whether_a_running_container_is_ready():
    assert container_sighting(LISTED_RUNNING, record(ready=False)).starting is True
    assert container_sighting(LISTED_RUNNING, record(ready=True)).starting is False
    assert container_sighting(LISTED_RUNNING, record(ready=None)).starting is False  # older


def test_an_exited_container_ended_at_the_engines_finish_time():
    s = container_sighting(INSPECT_EXITED)
    assert s.running is False and s.never_ready is False
    assert s.stopped_at == pytest.approx(FINISHED)
    assert s.container == EXITED_ID


def test_the_records_stop_time_wins_and_its_ready_flag_decides_the_cost():
    s = container_sighting(INSPECT_EXITED, record(stopped_at=STARTED + 60))
    assert s.stopped_at == STARTED + 60
    assert container_sighting(INSPECT_EXITED, record(ready=False)).never_ready is True
    # a container running again after the spawner recorded a stop: the engine is the truth
    again = container_sighting(LISTED_RUNNING, record(stopped_at=STARTED + 60))
    assert again.running is True and again.stopped_at is None


def test_an_exited_list_entry_has_no_finish_time():
    s = container_sighting(LISTED_EXITED)
    assert s.running is False and s.stopped_at is None


def test_a_created_container_is_a_spawn_in_progress():
    created = {**LISTED_RUNNING, "State": "created", "Status": "Created"}
    s = container_sighting(created)
    assert s.running is True and s.starting is True
    p = plan([], {KEY: s}, set(), now=STARTED + 60)
    assert p.open == [] and p.seen == []  # a starting server opens nothing
    paused = container_sighting({**LISTED_RUNNING, "State": "paused"})
    assert paused.running is True and paused.starting is False  # it holds its resources


@pytest.mark.parametrize(
    "container",
    [
        {**LISTED_RUNNING, "Labels": {}},
        {**LISTED_RUNNING, "Labels": None},
        with_labels(LISTED_RUNNING, **{"org.mlfactory.managed": None}),
        with_labels(LISTED_RUNNING, **{"org.mlfactory.managed": "0"}),
        with_labels(LISTED_RUNNING, **{"org.mlfactory.ledger-key": None}),
        with_labels(LISTED_RUNNING, **{"org.mlfactory.ledger-key": "../../etc/x"}),
        with_labels(LISTED_RUNNING, **{"org.mlfactory.ledger-key": "short"}),
        with_labels(LISTED_RUNNING, **{"org.mlfactory.started": "yesterday"}),
        with_labels(LISTED_RUNNING, **{"org.mlfactory.user": None}),
        with_labels(INSPECT_EXITED, **{"org.mlfactory.price-per-hour": "{"}),
    ],
    ids=[
        "no labels",
        "null labels",
        "not managed",
        "managed=0",
        "no key",
        "key with a path",
        "key too short",
        "start not a number",
        "no user",
        "price not JSON",
    ],
)
def test_a_container_with_malformed_labels_is_left_alone(container):
    assert container_sighting(container) is None
    assert engine_sightings([container], {}) == []


def test_engine_sightings_one_per_key_and_removed_containers_stopped():
    (s,) = engine_sightings([LISTED_EXITED, LISTED_RUNNING], {KEY: record()})
    assert s.running is True and s.container == RUNNING_ID  # the running one wins
    # a record whose container the engine no longer has: it was removed, so it stopped
    removed = Record("g" * 16, "bob", "", STARTED, 1.0, container="deadbeef", ready=True)
    (s,) = engine_sightings([], {removed.key: removed})
    assert s.running is False and s.container == "deadbeef" and s.key == "g" * 16
    ended = Record("h" * 16, "bob", "", STARTED, 1.0, container="f00d", stopped_at=STARTED + 5)
    (s,) = engine_sightings([], {ended.key: ended})
    assert s.stopped_at == STARTED + 5


def test_merge_keeps_the_engines_running_container_over_a_hub_that_lists_it():
    hub = Sighting(KEY, "ann", "", STARTED, 2.0, groups=("team-a", "ds"), source="hub")
    engine = container_sighting(with_labels(LISTED_RUNNING, **{"org.mlfactory.groups": "[]"}))
    (merged,) = merge([hub], [engine]).values()
    assert merged.container == RUNNING_ID and merged.groups == ("team-a", "ds")


def test_orphan_marks_of_unknown_containers_are_kept():
    marks = {KEY: 1000.0, "p" * 16: 1000.0}
    p = orphans([], hub_keys=set(), marked=marks, now=5000, grace=600, unknown={KEY})
    assert p.cleared == ["p" * 16] and p.stop == []


def test_the_service_watches_the_engine_the_config_names():
    def config(backend: str):
        return platform_with(
            platform={"name": "x", "backend": backend},
            containers={"engine": "tcp://127.0.0.1:2375"},
        )

    assert engine_view(config("local")) is None
    view = engine_view(config("container"))
    assert view.url == "tcp://127.0.0.1:2375" and view.required is True
    assert view.labels == {"org.mlfactory.managed": "1"}
    assert engine_view(config("auto")).required is False  # no engine may be a fact, not an outage
