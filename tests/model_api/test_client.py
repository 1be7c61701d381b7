"""The SDK, sync and async, against a real server in a thread."""

from __future__ import annotations

import importlib.util
import threading
import time

import numpy as np
import pytest
from mlfactory.model_api import (
    AsyncClient,
    Client,
    InvalidInput,
    Model,
    ModelFailure,
    NotFound,
    NotReady,
    Unauthorized,
)
from mlfactory.model_api.auth import TokenAuth
from mlfactory.model_api.server import ModelServer

from .conftest import IRIS_FEATURES, IRIS_LABELS, iris_records
from .helpers import Failing, ServerThread, ToyGenerator

TOKEN = "sdk-token"


@pytest.fixture(scope="module")
def running(iris_clf):
    s = ModelServer(authorizer=TokenAuth([TOKEN]))
    s.add(
        Model(
            iris_clf,
            task="classification",
            name="iris",
            labels=IRIS_LABELS,
            input_schema=IRIS_FEATURES,
        ),
        aliases=["production"],
    )
    s.add(Model(Failing(), task="classification", name="bad", labels=["a", "b"]))
    s.add(Model(ToyGenerator(), task="seq2seq", name="rev"))
    s.mark_ready()
    with ServerThread(s) as t:
        yield t


def test_sync_records_arrays_and_columns(running, iris, iris_clf):
    X, _ = iris
    expected = iris_clf.predict_proba(X[:3])
    with Client(running.url, token=TOKEN) as c:
        iris_m = c.model("iris")
        for data in (
            iris_records(X[:3]),
            X[:3],
            {n: X[:3, j] for j, n in enumerate(IRIS_FEATURES)},
        ):
            res = iris_m.predict(data)
            assert res.labels == ["setosa"] * 3
            assert np.allclose(res.probabilities, expected)
            assert res.model_version == "1" and res.model_alias == "production"
            assert res.to_records()[0]["label"] == "setosa"
        assert iris_m.input_names == IRIS_FEATURES  # discovered from metadata
        assert iris_m.schema()["request"]["required"] == ["records"]
        assert [m["name"] for m in c.models()] == ["bad", "iris", "rev"]
        only = iris_m.predict(X[:1], outputs=["label"])
        assert only.to_records() == [{"label": "setosa"}]
        with pytest.raises(AttributeError, match="ask for it in outputs"):
            _ = only.probabilities


def test_typed_errors_carry_the_servers_message(running, iris):
    X, _ = iris
    with Client(running.url, token=TOKEN) as c:
        with pytest.raises(InvalidInput) as e:
            c.model("iris").predict([{"sepal_length": 1.0}])
        assert e.value.field == "records[0].sepal_width" and e.value.status == 422
        assert "missing 'sepal_width'" in str(e.value)
        with pytest.raises(NotFound, match="no model named 'nope'"):
            c.model("nope").predict(iris_records(X[:1]))
        with pytest.raises(ModelFailure, match="RuntimeError"):
            c.model("bad").predict([{"x0": 1.0, "x1": 2.0}])
    with Client(running.url, token="wrong") as c, pytest.raises(Unauthorized):
        c.model("iris").predict(iris_records(X[:1]))


def test_to_pandas(running, iris):
    X, _ = iris
    with Client(running.url, token=TOKEN) as c:
        res = c.model("iris").predict(X[:2])
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="pip install pandas"):
            res.to_pandas()
    else:
        df = res.to_pandas()
        assert list(df["label"]) == ["setosa", "setosa"]
        assert "probabilities.virginica" in df.columns


@pytest.fixture
def loading_server(iris_clf):
    """A server whose models load only when ``release`` is set."""
    release = threading.Event()
    s = ModelServer(authorizer=TokenAuth([TOKEN]))

    def loader():
        release.wait(30)
        return [
            (
                Model(
                    iris_clf,
                    task="classification",
                    name="iris",
                    labels=IRIS_LABELS,
                    input_schema=IRIS_FEATURES,
                ),
                [],
            )
        ]

    with ServerThread(s) as t:
        t.release = release
        import asyncio

        asyncio.run_coroutine_threadsafe(s.load(loader), t._loop)
        yield t, s
        release.set()


def test_sync_retries_503_honoring_retry_after(loading_server, iris):
    t, server = loading_server
    X, _ = iris
    waits: list[float] = []

    def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # the server becomes ready during the second wait
            t.release.set()
            for _ in range(1000):
                if server.store.ready:
                    break
                time.sleep(0.01)

    with Client(t.url, token=TOKEN, sleep=fake_sleep, retries=3) as c:
        res = c.model("iris").predict(iris_records(X[:1]))
    assert waits == [1.0, 1.0]  # the server's Retry-After
    assert res.labels == ["setosa"]


def test_sync_gives_up_after_retries_or_a_long_retry_after(loading_server, iris):
    t, _ = loading_server
    X, _ = iris
    waits: list[float] = []
    with Client(t.url, token=TOKEN, sleep=waits.append, retries=2) as c:
        with pytest.raises(NotReady) as e:
            c.model("iris").predict(iris_records(X[:1]))
    assert waits == [1.0, 1.0] and e.value.retry_after == 1.0
    with Client(t.url, token=TOKEN, sleep=waits.append, max_retry_wait=0.5) as c:
        with pytest.raises(NotReady):
            c.model("iris").predict(iris_records(X[:1]))
    assert len(waits) == 2  # no wait longer than the caller allows


def test_no_retry_on_model_failure(running):
    waits: list[float] = []
    with Client(running.url, token=TOKEN, sleep=waits.append) as c:
        with pytest.raises(ModelFailure):
            c.model("bad").predict([{"x0": 1.0, "x1": 2.0}])
    assert waits == []


async def test_async_client(running, iris, iris_clf):
    X, _ = iris
    c = AsyncClient(running.url, token=TOKEN)
    m = c.model("iris", version="production")
    res = await m.predict(X[:2])
    assert np.allclose(res.probabilities, iris_clf.predict_proba(X[:2]))
    assert res.model_version == "1"
    assert (await m.schema())["response"]["properties"]["task"] == {"const": "classification"}
    with pytest.raises(InvalidInput) as e:
        await m.predict([{"sepal_length": "x"}])
    assert e.value.field.startswith("records[0]")


async def test_async_retries_503(loading_server, iris):
    t, server = loading_server
    X, _ = iris
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        t.release.set()
        import asyncio

        for _ in range(1000):
            if server.store.ready:
                break
            await asyncio.sleep(0.01)

    c = AsyncClient(t.url, token=TOKEN, sleep=fake_sleep)
    res = await c.model("iris").predict(iris_records(X[:1]))
    assert waits == [1.0] and res.labels == ["setosa"]


def test_seq2seq_over_predict(running):
    with Client(running.url, token=TOKEN) as c:
        rev = c.model("rev")
        res = rev.predict(["abc", "de"], parameters={"num_return_sequences": 2})
        assert res.generated_text == [["cba", "cba!"], ["ed", "ed!"]]
        assert res.decision_rule.value == "model_predict"
        rec = rev.predict(["abc"], outputs=["generated_text", "token_logprobs"]).to_records()
        assert rec == [{"generated_text": ["cba"], "token_logprobs": [[-0.1, -0.1, -0.1]]}]
        with pytest.raises(InvalidInput) as e:
            rev.predict(["abc"], parameters={"temperature": 2})
        assert e.value.field == "parameters.temperature"
