"""The models service serves new versions and moved aliases without a restart: a real
``ModelServer`` on a real port watches a ``ModelRepository``; what a publish adds is served
after the next poll, what was served before keeps its object, and a broken repository
leaves the old models in service."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from mlfactory.model_api import Model, ModelRepository
from mlfactory.model_api.auth import NoAuth
from mlfactory.model_api.server import ModelServer
from mlfactory.model_api.store import load_repository
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer

from tests.ports import free_port

from .conftest import IRIS_FEATURES, IRIS_LABELS, iris_records


def iris_v(clf, description: str = "") -> Model:
    return Model(
        clf,
        task="classification",
        name="iris",
        labels=IRIS_LABELS,
        input_schema=IRIS_FEATURES,
        description=description,
    )


class Ticks:
    """An injected sleep: the watcher waits on the test, not on the wall clock."""

    def __init__(self) -> None:
        self.asked = asyncio.Queue()
        self.go: asyncio.Queue = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        await self.asked.put(seconds)
        await self.go.get()

    async def tick(self) -> None:
        """Let the watcher run one poll and wait until it is sleeping again."""
        await self.go.put(None)
        await self.asked.get()


@pytest.fixture
async def running(tmp_path, iris_clf):
    repo = ModelRepository(tmp_path / "models")
    repo.publish(iris_v(iris_clf, "first"), created_by="alice")
    server = ModelServer(authorizer=NoAuth())
    since = repo.generation()
    await server.load(lambda: load_repository(repo))
    port = free_port()
    http = HTTPServer(server.app())
    http.listen(port, "127.0.0.1")
    ticks = Ticks()
    watcher = asyncio.create_task(server.watch(repo, interval=0.5, since=since, sleep=ticks))
    assert await ticks.asked.get() == 0.5  # the configured interval is what it waits
    yield repo, server, ticks, f"http://127.0.0.1:{port}"
    watcher.cancel()
    http.stop()
    server.runner.shutdown()


async def get(url: str) -> tuple[int, dict]:
    r = await AsyncHTTPClient().fetch(url, raise_error=False)
    return r.code, orjson.loads(r.body)


async def test_a_published_version_is_served_after_the_next_poll(running, iris_clf, iris):
    repo, server, ticks, url = running
    assert (await get(f"{url}/v2/models/iris/versions/2"))[0] == 404
    first = server.store.get("iris", "1")[0]

    repo.publish(iris_v(iris_clf, "second"), created_by="alice")
    await ticks.tick()

    code, meta = await get(f"{url}/v2/models/iris/versions/2")
    assert code == 200 and meta["versions"] == ["1", "2"]
    assert server.reloads == 1
    # the version served before is the same object (not unpickled again)
    assert server.store.get("iris", "1")[0] is first
    X, _ = iris
    r = await AsyncHTTPClient().fetch(
        f"{url}/v2/models/iris/versions/2/predict",
        method="POST",
        body=orjson.dumps({"records": iris_records(X[:2])}),
        headers={"Content-Type": "application/json"},
        raise_error=False,
    )
    assert r.code == 200, r.body
    assert orjson.loads(r.body)["model_version"] == "2"


async def test_an_alias_move_is_served_after_the_next_poll(running, iris_clf):
    repo, server, ticks, url = running
    repo.publish(iris_v(iris_clf), created_by="alice")
    repo.set_alias("iris", "production", 1)
    await ticks.tick()
    assert server.store.get("iris", None)[0].version == "1"
    repo.set_alias("iris", "production", 2)
    await ticks.tick()
    model, alias = server.store.get("iris", "production")
    assert (model.version, alias) == ("2", "production")
    assert server.reloads == 2


async def test_nothing_changed_means_nothing_reloaded(running):
    _repo, server, ticks, _url = running
    await ticks.tick()
    await ticks.tick()
    assert server.reloads == 0


async def test_a_request_in_flight_keeps_the_model_it_started_with(running, iris_clf):
    repo, server, ticks, _url = running
    before, _ = server.store.get("iris", None)
    repo.publish(iris_v(iris_clf, "second"), created_by="alice")
    await ticks.tick()
    after, _ = server.store.get("iris", None)
    assert (before.version, after.version) == ("1", "2")
    assert before.description == "first"  # the old object is intact for whoever holds it


async def test_an_unreadable_repository_keeps_serving_what_was_loaded(running, iris_clf):
    repo, server, ticks, url = running
    repo.publish(iris_v(iris_clf), created_by="alice")
    (repo.root / "iris" / "aliases.yaml").write_text("production: [not, a, number]\n")
    repo._bump()
    await ticks.tick()
    # the broken aliases make the model unavailable with its reason, not a 500
    code, body = await get(f"{url}/v2/models/iris")
    assert code == 503 and "alias" in body["error"]
    (repo.root / "iris" / "aliases.yaml").write_text("production: 2\n")
    repo._bump()
    await ticks.tick()
    code, body = await get(f"{url}/v2/models/iris")
    assert code == 200 and body["versions"] == ["1", "2"], body


async def test_the_real_poll_picks_up_a_publish(tmp_path, iris_clf):
    """With asyncio's own sleep and a short interval: served after a few polls, counted in
    polls (never in wall-clock seconds)."""
    repo = ModelRepository(tmp_path / "models")
    repo.publish(iris_v(iris_clf), created_by="alice")
    server = ModelServer(authorizer=NoAuth())
    await server.load(lambda: load_repository(repo))
    polls = 0

    async def counted(seconds: float) -> None:
        nonlocal polls
        polls += 1
        await asyncio.sleep(seconds)

    watcher = asyncio.create_task(server.watch(repo, interval=0.01, sleep=counted))
    await asyncio.sleep(0)
    repo.publish(iris_v(iris_clf), created_by="alice")
    published_at = polls
    while server.reloads == 0 and polls < published_at + 200:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    watcher.cancel()
    assert server.reloads == 1
    assert polls - published_at <= 3, "picked up within one or two poll intervals"
    assert server.store.get("iris", "2")[0].version == "2"
    server.runner.shutdown()


async def test_a_withdrawn_version_is_refused_and_the_default_falls_back(running, iris_clf):
    repo, server, ticks, url = running
    repo.publish(iris_v(iris_clf, "second"), created_by="alice")
    repo.set_serving("iris", 2, False, "withdrawn by alice: wrong labels")
    await ticks.tick()
    code, body = await get(f"{url}/v2/models/iris/versions/2")
    assert code == 503 and "wrong labels" in body["error"]
    assert server.store.get("iris", None)[0].version == "1"  # the newest still served
    repo.set_serving("iris", 2, True)
    await ticks.tick()
    assert server.store.get("iris", None)[0].version == "2"
