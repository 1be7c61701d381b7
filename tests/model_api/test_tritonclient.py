"""A client nobody here wrote: NVIDIA's ``tritonclient.http`` (Open Inference Protocol)."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient
from mlfactory.model_api import Model
from mlfactory.model_api.auth import TokenAuth
from mlfactory.model_api.server import ModelServer
from tritonclient.utils import InferenceServerException

from .conftest import IRIS_FEATURES, IRIS_LABELS
from .helpers import Counting, ServerThread, ToyGenerator


def auth() -> dict[str, str]:
    # a fresh dict per call: tritonclient adds its own headers to the dict it is given
    return {"Authorization": "Bearer triton-test"}


@pytest.fixture(scope="module")
def server(iris_clf):
    s = ModelServer(authorizer=TokenAuth(["triton-test"]))
    est = Counting(iris_clf)
    s.add(
        Model(
            est,
            task="classification",
            name="iris",
            labels=IRIS_LABELS,
            version=3,
            input_schema=IRIS_FEATURES,
        ),
        aliases=["production"],
    )
    s.add(Model(ToyGenerator(), task="seq2seq", name="rev"))
    s.mark_ready()
    with ServerThread(s) as t:
        t.est = est
        yield t


@pytest.fixture
def client(server):
    c = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    yield c
    c.close()


def test_health_and_metadata(client):
    assert client.is_server_live(headers=auth())
    assert client.is_server_ready(headers=auth())
    assert client.is_model_ready("iris", headers=auth())
    assert client.is_model_ready("iris", model_version="3", headers=auth())
    assert not client.is_model_ready("nope", headers=auth())
    meta = client.get_model_metadata("iris", headers=auth())
    assert meta["versions"] == ["3"]
    assert [i["name"] for i in meta["inputs"]] == IRIS_FEATURES
    assert {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]} in meta["outputs"]
    assert client.get_server_metadata(headers=auth())["name"] == "mlfactory-model-api"


def test_infer_binary_per_column_inputs(client, server, iris):
    X, _ = iris
    rows = X[[0, 60, 120]]
    inputs = []
    for j, name in enumerate(IRIS_FEATURES):
        t = httpclient.InferInput(name, [3], "FP64")
        t.set_data_from_numpy(rows[:, j].copy())  # binary tensor extension (the default)
        inputs.append(t)
    before = server.est.calls["predict_proba"]
    result = client.infer("iris", inputs, headers=auth())
    assert server.est.calls["predict_proba"] == before + 1
    labels = result.as_numpy("label")
    assert [v.decode() if isinstance(v, bytes) else v for v in labels] == [
        "setosa",
        "versicolor",
        "virginica",
    ]
    proba = result.as_numpy("probabilities")
    assert proba.shape == (3, 3) and np.allclose(proba.sum(axis=1), 1)
    resp = result.get_response()
    assert resp["model_version"] == "3"
    assert resp["parameters"]["decision_rule"] == "argmax"
    assert resp["parameters"]["output_schema_version"] == "1"


def test_infer_json_matrix_with_output_selection(client, iris):
    X, _ = iris
    t = httpclient.InferInput("input", [2, 4], "FP64")
    t.set_data_from_numpy(X[:2], binary_data=False)
    outputs = [httpclient.InferRequestedOutput("score", binary_data=False)]
    result = client.infer("iris", [t], model_version="production", outputs=outputs, headers=auth())
    assert [o["name"] for o in result.get_response()["outputs"]] == ["score"]
    assert result.as_numpy("score").shape == (2,)


def test_infer_bytes_seq2seq(client):
    t = httpclient.InferInput("text", [2], "BYTES")
    t.set_data_from_numpy(np.array([b"abc", "héllo".encode()], dtype=object))
    result = client.infer("rev", [t], headers=auth(), parameters={"num_return_sequences": 2})
    text = result.as_numpy("generated_text")
    assert text.shape == (2, 2)
    assert [v.decode() if isinstance(v, bytes) else v for v in text[1]] == ["olléh", "olléh!"]


def test_errors_reach_tritonclient_with_the_servers_message(client):
    t = httpclient.InferInput("sepal_length", [1], "FP64")
    t.set_data_from_numpy(np.array([1.0]))
    with pytest.raises(InferenceServerException, match="missing input 'sepal_width'") as e:
        client.infer("iris", [t], headers=auth())
    assert e.value.status() == "422"
    with pytest.raises(InferenceServerException) as e:
        client.infer("iris", [t])
    assert e.value.status() == "401"
