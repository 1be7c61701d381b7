"""The model registry: the rules (pure), then the publish flow from Python through the real
service app (HubOAuth against the stand-in hub) into the repository, served by a real
``ModelServer`` watching it, with every malformed upload refused with its reason. Answers are
held to the OpenAPI document."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import orjson
import pytest
import yaml
from mlfactory.model_api import Model, ModelRepository, Prediction, PublishRefused, publish
from mlfactory.model_api.auth import (
    ACCESS_FILE,
    ALL_MODELS_SCOPE,
    SERVICE_ACCESS_SCOPE,
    Access,
    Identity,
    NoAuth,
    dump_access,
    may_predict,
    model_scope,
    refusal,
)
from mlfactory.model_api.package import PACKAGE_FORMAT
from mlfactory.model_api.server import ModelServer
from mlfactory.model_api.store import load_repository
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.models_db import Registry
from mlfactory.service.models_registry import (
    Member,
    Owner,
    RegistryError,
    check_alias,
    check_members,
    check_predict_grant,
    check_write,
)
from mlfactory.service.periods import iso_utc
from sqlalchemy import text
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer

from tests.ports import free_port

from .helpers import Clock, platform_with
from .test_openapi import check_response

LIMIT = 1 << 20

# --- the rules ------------------------------------------------------------------------------


def members(*names: str, kind: str = "file", size: int = 10) -> list[Member]:
    return [Member(n, kind, size) for n in names]


def test_a_package_archive_holds_the_card_and_one_model():
    assert check_members(members("model.yaml", "model.joblib"), LIMIT) == [
        "model.yaml",
        "model.joblib",
    ]
    assert check_members(members("./model.yaml", "./model.pkl"), LIMIT) == [
        "model.yaml",
        "model.pkl",
    ]


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (members("model.yaml", "../model.pkl"), "'..'"),
        (members("model.yaml", "x/../../model.pkl"), "'..'"),
        (members("model.yaml", "/etc/model.pkl"), "absolute path"),
        (members("model.yaml", "C:\\model.pkl"), "absolute path"),
        ([*members("model.yaml"), Member("model.pkl", "symlink")], "a link"),
        ([*members("model.yaml"), Member("model.pkl", "hardlink")], "a link"),
        ([*members("model.yaml"), Member("model.pkl", "other")], "not a plain file"),
        (members("model.yaml", "sub/model.pkl"), "only"),
        (members("model.yaml", "evil.py"), "only"),
        (members("model.yaml", "model.yaml", "model.pkl"), "twice"),
        (members("model.pkl"), "no model.yaml"),
        (members("model.yaml", "model.pkl", "model.joblib"), "one serialized model"),
    ],
)
def test_archive_members_that_are_refused(given, reason):
    with pytest.raises(RegistryError) as e:
        check_members(given, LIMIT)
    assert e.value.status == 400 and reason in e.value.message


def test_the_unpacked_size_is_limited_too():
    with pytest.raises(RegistryError) as e:
        check_members(members("model.yaml", "model.pkl", size=LIMIT), LIMIT)
    assert e.value.status == 413 and "models.max_upload_bytes" in e.value.message


def test_who_may_publish_and_move_aliases():
    alice = Owner("alice", ("ds",))
    check_write(alice, "m", "alice", [], ())
    check_write(alice, "m", "carol", ["ds"], ())
    with pytest.raises(RegistryError) as e:
        check_write(alice, "m", "bob", ["ml"], ())
    assert e.value.status == 403 and "belongs to alice" in e.value.message
    check_write(None, "m", "bob", [], ())  # a new name: anyone, unless publishers are set
    with pytest.raises(RegistryError) as e:
        check_write(None, "m", "bob", ["ml"], ("ds",))
    assert "Only members of ds" in e.value.message
    with pytest.raises(RegistryError):
        check_alias("Production")
    with pytest.raises(RegistryError):
        check_alias("3")


# --- through the service --------------------------------------------------------------------


def regression_model() -> tuple[Model, np.ndarray]:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1
    return Model(LinearRegression().fit(X, y), task="regression", name="prices"), X


def multilabel_model() -> tuple[Model, np.ndarray]:
    from sklearn.datasets import make_multilabel_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    X, Y = make_multilabel_classification(n_samples=60, n_features=4, n_classes=3, random_state=0)
    clf = OneVsRestClassifier(LogisticRegression(max_iter=500)).fit(X, Y)
    return Model(clf, task="multi-label", name="tags", labels=["a", "b", "c"]), X


@pytest.fixture
def users(hub_state) -> dict[str, str]:
    return {
        "alice": hub_state.add_user("alice", groups=("ds",)),
        "bob": hub_state.add_user("bob"),
        "mallory": hub_state.add_user("mallory", groups=("ml",)),
    }


@pytest.fixture
async def svc(service, tmp_path, users):
    return await service(
        platform_with(models={"repository": str(tmp_path / "models"), "max_upload_bytes": "256Ki"})
    )


async def call(svc, method: str, template: str, path: str, **kw: Any) -> tuple[int, Any]:
    code, body, headers = await svc.call(method, path, **kw)
    check_response(method, template, code, headers, body)
    return code, body


def tar_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def package_files(model: Model, tmp: Path) -> dict[str, bytes]:
    repo = ModelRepository(tmp / "scratch")
    v = repo.publish(model, created_by="whoever")
    folder = repo.root / model.name / str(v)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


async def upload(svc, name: str, body: bytes, token: str, **headers: str) -> tuple[int, Any]:
    r = await AsyncHTTPClient().fetch(
        f"{svc.url}/api/models/{name}/versions",
        method="POST",
        body=body,
        headers={"Authorization": f"token {token}", **headers},
        raise_error=False,
    )
    data = orjson.loads(r.body) if r.body else None
    check_response("POST", "/api/models/{name}/versions", r.code, dict(r.headers), data)
    return r.code, data


async def test_publish_from_python_is_served_without_a_restart(svc, users, tmp_path, clock):
    repo = ModelRepository(tmp_path / "models")
    server = ModelServer(authorizer=NoAuth())
    await server.load(lambda: load_repository(repo))
    port = free_port()
    http = HTTPServer(server.app())
    http.listen(port, "127.0.0.1")
    polls = 0

    async def counted(seconds: float) -> None:
        nonlocal polls
        polls += 1
        await asyncio.sleep(seconds)

    watcher = asyncio.create_task(server.watch(repo, interval=0.02, sleep=counted))
    try:
        model, X = regression_model()
        answer = await asyncio.to_thread(
            publish,
            model,
            test_input=X[:3],
            registry=svc.url,
            token=users["alice"],
            notebook_path="work/prices.ipynb",
            history_version="3f2a9c1",
        )
        published_at = polls
        v = answer["version"]
        assert (answer["model"], v["version"], v["published_by"]) == ("prices", 1, "alice")
        assert (v["notebook_path"], v["history_version"]) == ("work/prices.ipynb", "3f2a9c1")
        assert v["published_at"] == iso_utc(clock())
        assert v["urls"]["predict"].endswith("/services/models/v2/models/prices/versions/1/predict")
        # the card in the repository was written by the service, with its provenance
        card = repo.card("prices", 1)
        assert (card.created_by, card.source_notebook) == ("alice", "work/prices.ipynb")

        # served within three polls of the watcher after the publish answered (a reload
        # the watcher made while the service was still writing does not count)
        record = dict(zip(["x0", "x1", "x2"], map(float, X[0]), strict=True))
        while True:
            r = await AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{port}/v2/models/prices/versions/1/predict",
                method="POST",
                body=orjson.dumps({"records": [record]}),
                headers={"Content-Type": "application/json"},
                raise_error=False,
            )
            if r.code == 200 or polls > published_at + 3:
                break
            await asyncio.sleep(0.01)
        assert server.reloads >= 1
        assert r.code == 200, r.body
        got = Prediction.from_response(orjson.loads(r.body))
        assert got.model_version == "1"
        assert np.allclose(np.ravel(got.predictions), model.model.predict(X[:1]))

        # the multi-label model goes the same way
        tags, Xt = multilabel_model()
        answer = await asyncio.to_thread(
            publish, tags, test_input=Xt[:2], registry=svc.url, token=users["alice"]
        )
        assert answer["version"]["task"] == "multi-label"
        seen = server.reloads
        before = polls
        while server.reloads == seen and polls < before + 500:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert server.store.get("tags", "1")[0].task.value == "multi-label"
    finally:
        watcher.cancel()
        http.stop()
        server.runner.shutdown()

    code, listing = await call(svc, "GET", "/api/models", "/api/models", token=users["bob"])
    assert code == 200 and [m["name"] for m in listing["models"]] == ["prices", "tags"]


async def test_aliases_move_only_by_owner_and_record_who_and_when(svc, users, clock, tmp_path):
    model, X = regression_model()
    for _ in range(2):
        await asyncio.to_thread(
            publish, model, test_input=X[:2], registry=svc.url, token=users["alice"]
        )
    path = "/api/models/prices/aliases/production"
    template = "/api/models/{name}/aliases/{alias}"
    code, body = await call(svc, "PUT", template, path, token=users["alice"], body={"version": 1})
    assert code == 200 and body["alias"]["moved_by"] == "alice"
    clock.advance(60)
    code, body = await call(svc, "PUT", template, path, token=users["alice"], body={"version": 2})
    assert (body["alias"]["previous"], body["alias"]["moved_at"]) == (1, iso_utc(clock()))
    assert ModelRepository(tmp_path / "models").aliases("prices") == {"production": 2}

    code, body = await call(svc, "PUT", template, path, token=users["bob"], body={"version": 1})
    assert code == 403 and "belongs to alice" in body["error"]
    code, body = await call(svc, "PUT", template, path, token=users["alice"], body={"version": 9})
    assert code == 404 and body["field"] == "version"
    code, body = await call(svc, "PUT", template, path, token=users["alice"], body={"version": "2"})
    assert code == 400

    code, body = await call(
        svc, "GET", "/api/models/{name}", "/api/models/prices", token=users["bob"]
    )
    m = body["model"]
    assert m["aliases"]["production"]["version"] == 2
    assert [(a["version"], a["moved_by"]) for a in m["alias_history"]] == [
        (2, "alice"),
        (1, "alice"),
    ]
    assert [v["version"] for v in m["versions"]] == [1, 2]


async def test_non_owners_are_refused_and_granted_groups_allowed(svc, users, tmp_path):
    model, X = regression_model()
    await asyncio.to_thread(
        publish, model, test_input=X[:2], registry=svc.url, token=users["alice"]
    )
    with pytest.raises(PublishRefused) as e:
        await asyncio.to_thread(
            publish, model, test_input=X[:2], registry=svc.url, token=users["mallory"]
        )
    assert e.value.details["status"] == 403 and "belongs to alice" in e.value.message

    grant = ("PATCH", "/api/models/{name}", "/api/models/prices")
    code, body = await call(svc, *grant, token=users["mallory"], body={"groups": ["ml"]})
    assert code == 403
    code, body = await call(svc, *grant, token=users["alice"], body={"groups": ["ml"]})
    assert code == 200 and body["groups"] == ["ml"]

    answer = await asyncio.to_thread(
        publish, model, test_input=X[:2], registry=svc.url, token=users["mallory"]
    )
    assert (answer["version"]["version"], answer["version"]["published_by"]) == (2, "mallory")
    code, body = await call(
        svc,
        "PUT",
        "/api/models/{name}/aliases/{alias}",
        "/api/models/prices/aliases/staging",
        token=users["mallory"],
        body={"version": 2},
    )
    assert code == 200
    # bob is in no granted group
    code, _ = await upload(svc, "prices", b"", users["bob"])
    assert code == 403


async def test_a_failing_test_prediction_publishes_nothing(svc, users, tmp_path):
    model, X = regression_model()
    with pytest.raises(PublishRefused) as e:
        await asyncio.to_thread(
            publish, model, test_input=X[:2, :2], registry=svc.url, token=users["alice"]
        )
    assert "test prediction failed" in e.value.message
    code, body = await call(svc, "GET", "/api/models", "/api/models", token=users["alice"])
    assert body["models"] == []
    assert not (tmp_path / "models" / "prices").exists()


async def test_malformed_uploads_are_refused_with_their_reason(svc, users, tmp_path):
    model, _ = regression_model()
    good = package_files(model, tmp_path)
    artifact = next(n for n in good if n != "model.yaml")
    card = yaml.safe_load(good["model.yaml"])

    def with_card(**changes: Any) -> bytes:
        return yaml.safe_dump({**card, **changes}).encode()

    cases = {
        "'..'": tar_of({"model.yaml": good["model.yaml"], f"../{artifact}": good[artifact]}),
        "absolute path": tar_of({"model.yaml": good["model.yaml"], f"/tmp/{artifact}": b"x"}),
        "a link": tar_of({"model.yaml": good["model.yaml"]}, links={artifact: "/etc/passwd"}),
        "does not match the SHA-256": tar_of(
            {"model.yaml": good["model.yaml"], artifact: good[artifact] + b"!"}
        ),
        "not valid YAML": tar_of({"model.yaml": b"{: not yaml", artifact: good[artifact]}),
        "task": tar_of({"model.yaml": with_card(task="clustering"), artifact: good[artifact]}),
        "published as 'prices'": tar_of(
            {"model.yaml": with_card(name="other"), artifact: good[artifact]}
        ),
        f"package format {PACKAGE_FORMAT + 1}": tar_of(
            {
                "model.yaml": with_card(format_version=PACKAGE_FORMAT + 1, mlfactory_version="9.0"),
                artifact: good[artifact],
            }
        ),
        "not a tar archive": b"this is not a tar file at all" * 40,
        "the archive holds 'model.yaml' twice": tar_of(
            {"model.yaml": good["model.yaml"], ".\\model.yaml": good["model.yaml"]}
        ),
    }
    cases["not a tar archive (gzip)"] = gzip.compress(b"x" * 100)[:40]
    for reason, body in cases.items():
        reason = reason.removesuffix(" (gzip)")
        code, answer = await upload(svc, "prices", body, users["alice"])
        assert code == 400, (reason, answer)
        assert reason in answer["error"], (reason, answer)
        assert str(tmp_path) not in answer["error"]  # no server paths in messages
    # a newer format names both mlfactory versions
    code, answer = await upload(
        svc, "prices", cases[f"package format {PACKAGE_FORMAT + 1}"], users["alice"]
    )
    assert "mlfactory 9.0" in answer["error"] and "this is mlfactory" in answer["error"]

    body = tar_of(good)
    code, answer = await upload(
        svc, "prices", body, users["alice"], **{"X-Package-SHA256": "0" * 64}
    )
    assert code == 400 and "X-Package-SHA256" in answer["error"]
    code, answer = await upload(
        svc,
        "prices",
        body,
        users["alice"],
        **{"X-Package-SHA256": hashlib.sha256(body).hexdigest()},
    )
    assert code == 201 and answer["version"]["version"] == 1
    # nothing refused left a version, a registration or a staging file behind
    repo = ModelRepository(tmp_path / "models")
    assert repo.versions("prices") == [1]
    assert list((repo.root / ".incoming").iterdir()) == []


async def test_oversized_uploads_are_refused(svc, users, tmp_path):
    big = tar_of({"model.yaml": b"a: 1\n", "model.pkl": b"\0" * (300 * 1024)})
    code, answer = await upload(svc, "prices", big, users["alice"])
    assert code == 413 and "models.max_upload_bytes" in answer["error"]
    code, body = await call(svc, "GET", "/api/models", "/api/models", token=users["alice"])
    assert body["models"] == []


async def test_every_registry_route_needs_a_hub_user(svc):
    for method, path in [
        ("GET", "/api/models"),
        ("GET", "/api/models/prices"),
        ("PATCH", "/api/models/prices"),
        ("POST", "/api/models/prices/versions"),
        ("PUT", "/api/models/prices/aliases/production"),
        ("PATCH", "/api/models/prices/versions/1"),
    ]:
        code, body, _ = await svc.call(method, path, body={} if method != "GET" else None)
        assert code == 403, (method, path, code, body)


async def test_the_client_reports_an_oversized_package(svc, users):
    model, X = regression_model()
    model.model.padding = np.zeros(100_000)  # ~800 KB pickled, over the 256 KiB limit
    with pytest.raises(PublishRefused) as e:
        await asyncio.to_thread(
            publish, model, test_input=X[:2], registry=svc.url, token=users["alice"]
        )
    assert "models.max_upload_bytes" in e.value.message


# --- the registry on both databases ---------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    else:
        eng = make_engine(request.getfixturevalue("postgresql_url"))
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
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


async def test_access_changes_apply_whole_or_not_at_all(engine, tmp_path):
    registry = Registry(engine, ModelRepository(tmp_path / "models"), Clock())
    model, _ = regression_model()
    archive = tmp_path / "p.tar"
    archive.write_bytes(tar_of(package_files(model, tmp_path)))
    kw = {"groups": [], "publishers": (), "limit": LIMIT, "history_version": None}
    await registry.publish("prices", archive, user="alice", notebook_path=None, **kw)
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
    registry = Registry(engine, ModelRepository(tmp_path / "models"), Clock())
    model, _ = regression_model()
    archive = tmp_path / "p.tar"
    archive.write_bytes(tar_of(package_files(model, tmp_path)))
    kw = {"groups": [], "publishers": (), "limit": LIMIT, "history_version": None}
    await registry.publish("prices", archive, user="alice", notebook_path=None, **kw)
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


# --- uploads that say their size only by sending it ------------------------------------------


async def chunked_upload(url: str, token: str, chunks: list[bytes]) -> tuple[int, dict]:
    """POST a chunked body (no Content-Length) without its closing chunk, then read the
    answer: one that comes proves the service refused while the body was still streaming."""
    u = urlparse(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    try:
        writer.write(
            (
                f"POST {u.path}/api/models/prices/versions HTTP/1.1\r\n"
                f"Host: {u.netloc}\r\nAuthorization: token {token}\r\n"
                "Content-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        for chunk in chunks:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 60)  # the service closes after answering
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body) if body else {}


async def test_a_chunked_upload_over_the_limit_is_refused_while_streaming(svc, users, tmp_path):
    limit = 256 * 1024
    chunks = [b"\0" * (64 * 1024)] * 4 + [b"\0"]  # one byte past the limit, never ended
    code, body = await chunked_upload(svc.url, users["alice"], chunks)
    assert code == 413, body
    assert "models.max_upload_bytes" in body["error"] and str(limit) in body["error"]
    incoming = tmp_path / "models" / ".incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []
    code, listing = await call(svc, "GET", "/api/models", "/api/models", token=users["alice"])
    assert listing["models"] == []
    # the service is fine afterwards: a package under the limit still publishes
    model, _ = regression_model()
    code, answer = await upload(
        svc, "prices", tar_of(package_files(model, tmp_path)), users["alice"]
    )
    assert code == 201, answer


async def test_a_small_compressed_upload_that_unpacks_past_the_limit_is_refused(
    svc, users, tmp_path
):
    # 300 KiB of zeros gzip to a few hundred bytes: the Content-Length check passes it, the
    # member check as the archive is read does not
    bomb = gzip.compress(tar_of({"model.yaml": b"a: 1\n", "model.pkl": b"\0" * (300 * 1024)}))
    assert len(bomb) < 4096
    code, answer = await upload(svc, "prices", bomb, users["alice"])
    assert code == 413 and "models.max_upload_bytes" in answer["error"], answer
    code, answer = await upload(svc, "prices", b"", users["alice"])
    assert code == 400 and "not a tar archive" in answer["error"], answer
    assert list((tmp_path / "models" / ".incoming").iterdir()) == []
    assert not (tmp_path / "models" / "prices").exists()
