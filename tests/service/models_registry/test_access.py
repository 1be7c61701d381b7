"""The model registry on SQLite and PostgreSQL (versions, grants, alias history, withdrawn
versions), and who may call a model published after the hub started: predict grants reach
the repository the models service reads, whole or not at all."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from mlfactory.model_api import ModelRepository, publish
from mlfactory.model_api.auth import (
    ACCESS_FILE,
    ALL_MODELS_SCOPE,
    SERVICE_ACCESS_SCOPE,
    Access,
    Identity,
    dump_access,
    may_predict,
    model_scope,
    refusal,
)
from mlfactory.model_api.store import load_repository
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.models_db import Registry
from mlfactory.service.models_registry import (
    Owner,
    RegistryError,
    check_predict_grant,
)
from mlfactory.service.periods import iso_utc

from ..helpers import Clock, empty_database
from .packages import LIMIT, call, package_files, regression_model, tar_of

# --- the registry on both databases ---------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    eng = make_engine(empty_database(request, tmp_path))
    upgrade(eng)
    yield eng
    eng.dispose()


async def test_registry_versions_grants_and_alias_history(engine, tmp_path):
    clock = Clock()
    registry = Registry(engine, ModelRepository(tmp_path / "models"), clock)
    model, _ = regression_model()
    archive = tmp_path / "p.tar"
    archive.write_bytes(tar_of(package_files(model, tmp_path)))
    kw = {"groups": [], "publishers": (), "limit": LIMIT, "history_version": None}
    v1 = await registry.publish("prices", archive, user="alice", notebook_path="a.ipynb", **kw)
    clock.advance(10)
    v2 = await registry.publish("prices", archive, user="alice", notebook_path=None, **kw)
    assert (v1["version"], v2["version"], v2["published_at"]) == (1, 2, iso_utc(clock()))
    assert v1["size"] > 0 and len(v1["sha256"]) == 64
    with pytest.raises(RegistryError) as e:
        await registry.publish("prices", archive, user="bob", notebook_path=None, **kw)
    assert e.value.status == 403
    assert await registry.grant("prices", ["ml", "ml"], "alice") == ["ml"]
    v3 = await registry.publish(
        "prices", archive, user="bob", notebook_path=None, **{**kw, "groups": ["ml"]}
    )
    assert v3["published_by"] == "bob"
    await registry.move_alias("prices", "production", 1, "alice", [])
    clock.advance(5)
    move = await registry.move_alias("prices", "production", 3, "bob", ["ml"])
    assert (move["previous"], move["moved_by"], move["moved_at"]) == (1, "bob", iso_utc(clock()))
    detail = await registry.detail("prices")
    assert detail["groups"] == ["ml"] and detail["latest"] == 3
    assert detail["aliases"]["production"]["version"] == 3
    assert [m["moved_by"] for m in detail["alias_history"]] == ["bob", "alice"]
    assert await registry.detail("nothing") is None


async def test_withdrawing_a_version_is_recorded_and_reaches_the_repository(
    svc, users, clock, tmp_path
):
    model, X = regression_model()
    for _ in range(2):
        await asyncio.to_thread(
            publish, model, test_input=X[:2], registry=svc.url, token=users["alice"]
        )
    template = "/api/models/{name}/versions/{version}"
    path = "/api/models/prices/versions/2"
    code, body = await call(
        svc, "PATCH", template, path, token=users["bob"], body={"serving": False}
    )
    assert code == 403
    code, body = await call(
        svc, "PATCH", template, path, token=users["alice"], body={"serving": "no"}
    )
    assert code == 400 and body["field"] == "serving"
    code, body = await call(
        svc, "PATCH", template, path, token=users["alice"], body={"serving": False}
    )
    v = body["version"]
    assert (v["serving"], v["serving_changed_by"], v["serving_changed_at"]) == (
        False,
        "alice",
        iso_utc(clock()),
    )
    repo = ModelRepository(tmp_path / "models")
    assert "withdrawn by alice" in repo.withdrawn("prices")[2]
    loaded = load_repository(repo)
    assert [m.version for m, _ in loaded.models] == ["1"]
    code, body = await call(
        svc,
        "PATCH",
        template,
        "/api/models/prices/versions/7",
        token=users["alice"],
        body={"serving": True},
    )
    assert code == 404
    code, body = await call(
        svc,
        "PATCH",
        template,
        "/api/models/prices/versions/x1",
        token=users["alice"],
        body={"serving": True},
    )
    assert code == 404 and body["field"] == "version"
    code, body = await call(
        svc, "PATCH", template, path, token=users["alice"], body={"serving": True}
    )
    assert body["version"]["serving"] is True and repo.withdrawn("prices") == {}


# --- who may call a model published after hub start ------------------------------------------


def test_who_may_set_predict_groups():
    alice = Owner("alice", ("ds",))
    known = {"ds", "ml"}
    assert check_predict_grant(alice, "m", "alice", False, ["ml", "ds", "ml"], known) == [
        "ds",
        "ml",
    ]
    assert check_predict_grant(alice, "m", "root", True, [], known) == []  # an admin may
    with pytest.raises(RegistryError) as e:
        check_predict_grant(alice, "m", "carol", False, ["ml"], known)  # a publisher may not
    assert e.value.status == 403 and "alice" in e.value.message
    with pytest.raises(RegistryError) as e:
        check_predict_grant(alice, "m", "alice", False, ["ml", "typo", "nope"], known)
    assert (e.value.status, e.value.field) == (400, "predict_groups")
    assert "'nope', 'typo'" in e.value.message and "ml" in e.value.message
    with pytest.raises(RegistryError) as e:
        check_predict_grant(None, "m", "alice", True, [], known)
    assert e.value.status == 404


async def test_predict_groups_reach_the_repository_the_models_service_reads(
    svc, users, tmp_path, hub_state
):
    model, X = regression_model()
    await asyncio.to_thread(
        publish, model, test_input=X[:2], registry=svc.url, token=users["alice"]
    )
    repo = ModelRepository(tmp_path / "models")
    # the first publish already lets its owner call it
    assert load_repository(repo).access["prices"] == Access("alice", frozenset())
    before = repo.generation()

    grant = ("PATCH", "/api/models/{name}", "/api/models/prices")
    code, body = await call(svc, *grant, token=users["alice"], body={"predict_groups": ["ml"]})
    assert code == 200, body
    assert (body["predict_groups"], body["groups"]) == (["ml"], [])
    assert repo.generation() != before  # the models service reloads on this
    assert load_repository(repo).access["prices"] == Access("alice", frozenset({"ml"}))
    code, body = await call(
        svc, "GET", "/api/models/{name}", "/api/models/prices", token=users["bob"]
    )
    assert body["model"]["predict_groups"] == ["ml"]

    # a group that exists nowhere is refused, naming it; nothing changes
    code, body = await call(svc, *grant, token=users["alice"], body={"predict_groups": ["mll"]})
    assert code == 400 and body["field"] == "predict_groups" and "'mll'" in body["error"]
    # a group from the platform config counts even before anyone is in it
    code, body = await call(
        svc, *grant, token=users["alice"], body={"predict_groups": ["ml", "data-science"]}
    )
    assert code == 200 and body["predict_groups"] == ["data-science", "ml"]
    # only the owner or an admin
    code, body = await call(svc, *grant, token=users["mallory"], body={"predict_groups": []})
    assert code == 403 and "alice" in body["error"]
    root = hub_state.add_user("root", admin=True)
    code, body = await call(svc, *grant, token=root, body={"predict_groups": ["ds"]})
    assert code == 200 and body["predict_groups"] == ["ds"]
    assert load_repository(repo).access["prices"].predict_groups == {"ds"}
    # publish groups and predict groups are separate grants
    code, body = await call(svc, *grant, token=users["alice"], body={"groups": ["ml"]})
    assert (body["groups"], body["predict_groups"]) == (["ml"], ["ds"])
    code, body = await call(svc, *grant, token=users["alice"], body={"callers": ["ml"]})
    assert code == 400 and body["field"] == "callers"
    # an admin who is not the owner may set predict_groups but not groups: asked both at
    # once, nothing changes (no half-applied PATCH)
    code, body = await call(
        svc, *grant, token=root, body={"predict_groups": ["ml"], "groups": ["ds"]}
    )
    assert code == 403 and body["field"] == "groups" and "alice" in body["error"]
    assert load_repository(repo).access["prices"].predict_groups == {"ds"}
    code, body = await call(
        svc, "GET", "/api/models/{name}", "/api/models/prices", token=users["alice"]
    )
    assert (body["model"]["predict_groups"], body["model"]["groups"]) == (["ds"], ["ml"])


async def prices_registry(engine, tmp_path: Path) -> Registry:
    """A registry on ``engine`` holding version 1 of alice's regression model ``prices``."""
    registry = Registry(engine, ModelRepository(tmp_path / "models"), Clock())
    model, _ = regression_model()
    archive = tmp_path / "p.tar"
    archive.write_bytes(tar_of(package_files(model, tmp_path)))
    kw = {"groups": [], "publishers": (), "limit": LIMIT, "history_version": None}
    await registry.publish("prices", archive, user="alice", notebook_path=None, **kw)
    return registry


async def test_access_changes_apply_whole_or_not_at_all(engine, tmp_path):
    registry = await prices_registry(engine, tmp_path)
    changes = {"admin": True, "known": {"ds", "ml"}, "predict_groups": ["ml"], "groups": ["ml"]}
    with pytest.raises(RegistryError) as e:  # an admin, not the owner: groups refused
        await registry.update_access("prices", "root", **changes)
    assert e.value.status == 403
    detail = await registry.detail("prices")
    assert (detail["predict_groups"], detail["groups"]) == ([], [])
    assert load_repository(registry.repo).access["prices"].predict_groups == frozenset()
    # the owner: both at once, in one transaction
    assert await registry.update_access("prices", "alice", **changes) == {
        "predict_groups": ["ml"],
        "groups": ["ml"],
    }
    detail = await registry.detail("prices")
    assert (detail["predict_groups"], detail["groups"]) == (["ml"], ["ml"])
    with pytest.raises(RegistryError) as e:
        await registry.update_access("nothing", "alice", groups=[])
    assert e.value.status == 404


async def test_models_registered_before_predict_grants_get_their_access_at_start(engine, tmp_path):
    registry = await prices_registry(engine, tmp_path)
    await registry.update_access("prices", "alice", known={"ml"}, predict_groups=["ml"])
    # as a model registered before migration 0008 left it: no access.yaml
    (registry.repo.root / "prices" / ACCESS_FILE).unlink()
    assert "prices" not in load_repository(registry.repo).access  # owner refused now
    assert await asyncio.to_thread(registry.write_missing_access) == ["prices"]
    assert load_repository(registry.repo).access["prices"] == Access("alice", frozenset({"ml"}))
    assert await asyncio.to_thread(registry.write_missing_access) == []  # only missing ones


async def test_the_models_service_lets_owner_and_granted_groups_call(tmp_path):
    """The rule as the service applies it, with the repository's access facts."""
    repo = ModelRepository(tmp_path / "models")
    model, X = regression_model()
    repo.publish(model, created_by="alice")
    (repo.root / "prices" / ACCESS_FILE).write_text(dump_access(Access("alice", frozenset({"ml"}))))
    access = load_repository(repo).access["prices"]
    alice = Identity("alice", frozenset())
    carol = Identity("carol", frozenset(), frozenset({"ml"}))
    eve = Identity("eve", frozenset(), frozenset({"ds"}))
    scoped = Identity("eve", frozenset({model_scope("prices")}))
    everything = Identity("eve", frozenset({ALL_MODELS_SCOPE}))
    service = Identity("alice", frozenset(), frozenset({"ml"}), kind="service")
    assert [
        may_predict(i, "prices", access) for i in (alice, carol, eve, scoped, everything, service)
    ] == [True, True, False, True, True, False]
    assert not may_predict(alice, "prices", None)  # no access facts: scopes only
    refused = refusal(eve, "prices", access)
    assert refused.status == 403
    assert "'prices'" in refused.message and model_scope("prices") in refused.message
    assert "ml" in refused.message and "ask alice" in refused.message
    # a token the owner gave another hub service (no access to the models service) is not
    # the owner's: only the model's scopes could let it in, and the refusal names the scope
    elsewhere = Identity("alice", frozenset({"read:users:name!user=alice"}), service_access=False)
    assert not may_predict(elsewhere, "prices", access)
    refused = refusal(elsewhere, "prices", access)
    assert refused.status == 403 and SERVICE_ACCESS_SCOPE in refused.message
    assert may_predict(replace(elsewhere, scopes=frozenset({ALL_MODELS_SCOPE})), "prices", access)
    stranger = Identity("eve", frozenset(), frozenset({"ds"}), service_access=False)
    assert SERVICE_ACCESS_SCOPE not in refusal(stranger, "prices", access).message
    # an unreadable access file grants nothing; the model is still served
    (repo.root / "prices" / ACCESS_FILE).write_text("owner: [not, a, name]\n")
    loaded = load_repository(repo)
    assert "prices" not in loaded.access and [m.name for m, _ in loaded.models] == ["prices"]
