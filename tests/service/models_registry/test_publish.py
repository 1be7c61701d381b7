"""The model registry: the rules (pure), then the publish flow from Python through the real
service app (HubOAuth against the stand-in hub) into the repository, served by a real
``ModelServer`` watching it, with every malformed upload refused with its reason. Answers are
held to the OpenAPI document."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from typing import Any
from urllib.parse import urlparse

import numpy as np
import orjson
import pytest
import yaml
from mlfactory.model_api import ModelRepository, Prediction, PublishRefused, publish
from mlfactory.model_api.auth import (
    NoAuth,
)
from mlfactory.model_api.package import PACKAGE_FORMAT
from mlfactory.model_api.server import ModelServer
from mlfactory.model_api.store import load_repository
from mlfactory.service.models_registry import (
    Member,
    Owner,
    RegistryError,
    check_alias,
    check_members,
    check_write,
)
from mlfactory.service.periods import iso_utc
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer

from tests.ports import free_port

from ..test_openapi import check_response
from .packages import LIMIT, call, multilabel_model, package_files, regression_model, tar_of

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
