"""A regression model and a multi-label model go from a real IPython kernel (jupyter_client,
as a notebook runs them) through ``publish`` to the platform service's registry, and are
served by a real models service process watching the repository, with no restart: the
task-shaped ``/predict`` answers (values with their spread; label sets) and the Open
Inference Protocol answer match what the model gives in the kernel."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
import pytest
from jupyter_client.manager import start_new_kernel
from tornado.httpclient import AsyncHTTPClient

from tests.ports import free_port
from tests.service.helpers import platform_with

TOKEN = "models-service-test-token"  # noqa: S105 - the test's own models service

REGRESSION = """
import json
from sklearn.datasets import make_regression
from sklearn.linear_model import BayesianRidge
from mlfactory.model_api import Model, publish
X, y = make_regression(n_samples=80, n_features=3, noise=5.0, random_state=0)
prices = Model(BayesianRidge().fit(X, y), task="regression", name="prices",
               input_schema=["rooms", "age", "distance"])
answer = publish(prices, test_input=X[:3], notebook_path="work/prices.ipynb")
mean, std = prices.model.predict(X[:3], return_std=True)
print(json.dumps({"answer": answer, "X": X[:3].tolist(), "mean": mean.tolist(),
                  "std": std.tolist()}))
"""

MULTI_LABEL = """
import json
from sklearn.datasets import make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from mlfactory.model_api import Model, publish
Xt, Y = make_multilabel_classification(n_samples=120, n_features=4, n_classes=3,
                                       random_state=0)
clf = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(Xt, Y)
tags = Model(clf, task="multi-label", name="tags", labels=["sports", "<politics>", "tech"],
             input_schema=["w", "x", "y", "z"])
answer = publish(tags, test_input=Xt[:4])
print(json.dumps({"answer": answer, "X": Xt[:4].tolist(), "on": clf.predict(Xt[:4]).tolist(),
                  "proba": clf.predict_proba(Xt[:4]).tolist()}))
"""


@pytest.fixture
async def registry(service, hub_state, tmp_path):
    """The platform service (its registry writes ``tmp_path/models``) and alice's token."""
    token = hub_state.add_user("alice", groups=("ds",))
    svc = await service(platform_with(models={"repository": str(tmp_path / "models")}))
    return svc, token


@pytest.fixture
async def models_service(tmp_path) -> AsyncIterator[str]:
    """``python -m mlfactory.model_api.serve`` on the (still empty) repository."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
        [
            sys.executable,
            "-m",
            "mlfactory.model_api.serve",
            "--repository",
            str(tmp_path / "models"),
            "--port",
            str(port),
            "--reload-interval",
            "0.2",
        ],
        env={**os.environ, "MLFACTORY_MODEL_API_TOKEN": TOKEN},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await until(lambda: get(f"{url}/v2/health/ready"), 60, "the models service ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def kernel(registry, tmp_path):
    """A kernel whose environment is a user's server's: the registry URL and a hub token."""
    svc, token = registry
    home = tmp_path / "kernel"
    env = {
        **os.environ,
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / "rt"),
        "MLFACTORY_SERVICE_URL": svc.url,
        "JUPYTERHUB_API_TOKEN": token,
    }
    home.mkdir()
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(home), env=env)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


async def run_cell(kc: Any, code: str) -> dict[str, Any]:
    """Run one cell in a worker thread (the service answers on this event loop meanwhile);
    the cell prints one JSON line, returned here."""
    out: list[str] = []
    errors: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            errors.append("\n".join(msg["content"]["traceback"]))

    await asyncio.to_thread(kc.execute_interactive, code, output_hook=hook, timeout=180)
    assert not errors, errors[0]
    return json.loads("".join(out))


async def get(url: str) -> bool:
    try:
        r = await AsyncHTTPClient().fetch(url, raise_error=False)
    except OSError:
        return False
    return r.code == 200


async def until(check: Any, seconds: float, what: str) -> None:
    """Poll ``check`` (async, -> bool) until true; fail after ``seconds`` (a generous bound)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not await check():
        if loop.time() > end:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    r = await AsyncHTTPClient().fetch(
        url,
        method="POST",
        body=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        raise_error=False,
    )
    return r.code, orjson.loads(r.body)


async def served(url: str, name: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def ready() -> bool:
        r = await AsyncHTTPClient().fetch(
            f"{url}/v2/models/{name}/versions/1/ready", headers=auth, raise_error=False
        )
        return r.code == 200

    await until(ready, 60, f"{name} served without a restart")


async def test_a_regression_model_from_a_kernel_is_served_with_its_spread(kernel, models_service):
    got = await run_cell(kernel, REGRESSION)
    version = got["answer"]["version"]
    assert (got["answer"]["model"], version["version"], version["task"]) == (
        "prices",
        1,
        "regression",
    )
    assert (version["published_by"], version["notebook_path"]) == ("alice", "work/prices.ipynb")
    await served(models_service, "prices")

    records = [dict(zip(["rooms", "age", "distance"], row, strict=True)) for row in got["X"]]
    code, body = await post(f"{models_service}/v2/models/prices/predict", {"records": records})
    assert code == 200, body
    assert (body["task"], body["model_version"], body["labels"]) == ("regression", "1", [])
    rows = body["predictions"]
    assert np.allclose([r["prediction"] for r in rows], got["mean"])
    assert np.allclose([r["std"] for r in rows], got["std"])
    # a central interval around the prediction, from the same call
    assert all(r["lower"] < r["prediction"] < r["upper"] for r in rows)

    tensor = {"name": "input", "datatype": "FP64", "shape": [3, 3], "data": sum(got["X"], [])}
    code, body = await post(
        f"{models_service}/v2/models/prices/versions/1/infer", {"id": "r", "inputs": [tensor]}
    )
    assert code == 200, body
    out = {o["name"]: o for o in body["outputs"]}
    assert (body["id"], body["model_name"], body["model_version"]) == ("r", "prices", "1")
    assert (out["prediction"]["datatype"], out["prediction"]["shape"]) == ("FP64", [3])
    assert np.allclose(out["prediction"]["data"], got["mean"])


async def test_a_multi_label_model_from_a_kernel_is_served_with_label_sets(kernel, models_service):
    got = await run_cell(kernel, MULTI_LABEL)
    assert got["answer"]["version"]["task"] == "multi-label"
    await served(models_service, "tags")
    names = ["sports", "<politics>", "tech"]
    expected = [{n for n, on in zip(names, row, strict=True) if on} for row in got["on"]]
    assert len({frozenset(s) for s in expected}) > 1  # the rows differ: the check can fail

    records = [dict(zip("wxyz", row, strict=True)) for row in got["X"]]
    code, body = await post(f"{models_service}/v2/models/tags/predict", {"records": records})
    assert code == 200, body
    assert (body["task"], body["labels"]) == ("multi-label", names)
    rows = body["predictions"]
    assert [set(r["labels"]) for r in rows] == expected
    assert np.allclose([[r["probabilities"][n] for n in names] for r in rows], got["proba"])

    tensor = {"name": "input", "datatype": "FP64", "shape": [4, 4], "data": sum(got["X"], [])}
    code, body = await post(
        f"{models_service}/v2/models/tags/infer",
        {"inputs": [tensor], "outputs": [{"name": "labels"}, {"name": "probabilities"}]},
    )
    assert code == 200, body
    out = {o["name"]: o for o in body["outputs"]}
    assert (out["labels"]["datatype"], out["labels"]["shape"]) == ("BOOL", [4, 3])
    assert out["labels"]["data"] == [bool(v) for row in got["on"] for v in row]
    assert out["probabilities"]["shape"] == [4, 3]
    assert np.allclose(out["probabilities"]["data"], np.ravel(got["proba"]))
