"""The HTTP server: routes, versions in every response, errors, readiness, timeouts, auth."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import orjson
import pytest
from mlfactory.model_api import Model
from mlfactory.model_api.auth import HubScopeAuth, NoAuth, TokenAuth, hub_custom_scopes
from mlfactory.model_api.server import ModelServer
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

from .conftest import IRIS_FEATURES, IRIS_LABELS, iris_records
from .helpers import Blocking, Counting, Failing, free_port

TOKEN = "t0k-for-tests"


class Served:
    def __init__(self, server: ModelServer) -> None:
        self.server = server
        self.port = free_port()
        self.http = HTTPServer(server.app())
        self.http.listen(self.port, "127.0.0.1")
        self.client = AsyncHTTPClient()

    async def fetch(self, path, body=None, *, token=TOKEN, method=None, headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if body is not None and not isinstance(body, (bytes, str)):
            body = orjson.dumps(body)
        r = await self.client.fetch(
            f"http://127.0.0.1:{self.port}{path}",
            method=method or ("POST" if body is not None else "GET"),
            body=body,
            headers=h,
            raise_error=False,
        )
        data = orjson.loads(r.body) if r.body else None
        return r.code, r.headers, data


@pytest.fixture
async def served(iris_clf):
    server = ModelServer(authorizer=TokenAuth([TOKEN]), timeout=10)
    est = Counting(iris_clf)
    v1 = Model(
        est,
        task="classification",
        name="iris",
        labels=IRIS_LABELS,
        version=1,
        input_schema=["sepal_length", "sepal_width", "petal_length", "petal_width"],
    )
    v2 = Model(
        est,
        task="classification",
        name="iris",
        labels=IRIS_LABELS,
        version=2,
        input_schema=["sepal_length", "sepal_width", "petal_length", "petal_width"],
    )
    server.add(v1)
    server.add(v2, aliases=["production"])
    server.mark_ready()
    s = Served(server)
    s.est = est
    yield s
    s.http.stop()
    server.runner.shutdown()


async def test_predict_carries_both_versions_and_the_rule(served, iris):
    X, _ = iris
    code, _, body = await served.fetch("/v2/models/iris/predict", {"records": iris_records(X[:2])})
    assert code == 200
    assert served.est.calls["predict_proba"] == 1 and served.est.total == 1
    assert body["model_version"] == "2" and body["model_alias"] == "production"
    assert body["api_version"] == "v2" and body["output_schema_version"] == "1"
    assert body["decision_rule"] == "argmax" and body["thresholds"] is None
    assert body["predictions"][0]["label"] == "setosa"
    assert set(body["predictions"][0]["probabilities"]) == set(IRIS_LABELS)
    code, _, body = await served.fetch(
        "/v2/models/iris/versions/1/predict", {"records": iris_records(X[:1]), "outputs": ["label"]}
    )
    assert code == 200 and body["model_version"] == "1" and body["model_alias"] is None
    assert body["predictions"] == [{"label": "setosa"}]


async def test_infer_json_tensors(served, iris):
    X, _ = iris
    req = {
        "id": "r1",
        "inputs": [
            {"name": "input", "datatype": "FP64", "shape": [2, 4], "data": X[:2].ravel().tolist()}
        ],
        "outputs": [{"name": "label"}, {"name": "probabilities"}],
    }
    code, _, body = await served.fetch("/v2/models/iris/versions/production/infer", req)
    assert code == 200, body
    assert body["id"] == "r1" and body["model_version"] == "2"
    out = {o["name"]: o for o in body["outputs"]}
    assert out["label"]["data"] == ["setosa", "setosa"]
    assert out["probabilities"]["shape"] == [2, 3]
    assert body["parameters"]["decision_rule"] == "argmax"


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v2/models/iris/predict", b"{not json", 400, None),
        ("/v2/models/iris/predict", b"[1, 2]", 400, None),
        (
            "/v2/models/iris/predict",
            {"records": [{"sepal_length": 1.0}]},
            422,
            "records[0].sepal_width",
        ),
        ("/v2/models/iris/predict", {"rows": []}, 422, "records"),
        (
            "/v2/models/iris/predict",
            {
                "records": [
                    dict.fromkeys(
                        ["sepal_length", "sepal_width", "petal_length", "petal_width"], 1.0
                    )
                ],
                "outputs": ["colour"],
            },
            422,
            "outputs[0]",
        ),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "input", "datatype": "FP16", "shape": [1, 4], "data": [1] * 4}]},
            422,
            "inputs[0].datatype",
        ),
        (
            "/v2/models/iris/infer",
            {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [1] * 3}]},
            422,
            "inputs[0].data",
        ),
        (
            "/v2/models/iris/infer",
            {
                "inputs": [
                    {"name": "input", "datatype": "INT64", "shape": [1, 4], "data": [1.5] * 4}
                ]
            },
            422,
            "inputs[0].data",
        ),
    ],
)
async def test_client_errors_name_the_field(served, path, body, status, field):
    code, _, data = await served.fetch(path, body)
    assert code == status
    assert set(data) == {"error", "error_type", "details"}
    if field:
        assert data["details"]["field"] == field
        assert data["error_type"] == "invalid_input"


async def test_unknown_model_and_version_are_404(served):
    code, _, data = await served.fetch("/v2/models/nope/predict", {"records": []})
    assert code == 404 and "served: iris" in data["error"]
    code, _, data = await served.fetch("/v2/models/iris/versions/7")
    assert code == 404 and "versions: 1, 2; aliases: production" in data["error"]
    code, _, data = await served.fetch("/v3/anything")
    assert code == 404 and data["error_type"] == "not_found"


async def test_auth_refused_without_or_with_a_wrong_token(served):
    for token in (None, "wrong"):
        code, headers, data = await served.fetch(
            "/v2/models/iris/predict", {"records": []}, token=token
        )
        assert code == 401 and data["error_type"] == "unauthorized"
        assert headers["WWW-Authenticate"].startswith("Bearer")
    # no model enumeration without a token
    code, _, _ = await served.fetch("/v2/models/secret-model", token=None)
    assert code == 401
    # a token in the URL is not a credential
    code, _, _ = await served.fetch(f"/v2/models/iris?token={TOKEN}", token=None)
    assert code == 401
    # health answers without a token (probes), and says nothing about models
    assert (await served.fetch("/v2/health/live", token=None))[0] == 200


async def test_metadata_schema_openapi_and_listing(served):
    code, _, meta = await served.fetch("/v2/models/iris")
    assert code == 200
    assert meta["versions"] == ["1", "2"]
    assert meta["parameters"]["model_version"] == "2"
    assert [i["name"] for i in meta["inputs"]][0] == "sepal_length"
    assert {o["name"] for o in meta["outputs"]} >= {"label", "probabilities"}
    code, _, schema = await served.fetch("/v2/models/iris/versions/1/schema")
    assert code == 200 and schema["request"]["required"] == ["records"]
    code, _, doc = await served.fetch("/v2/models/iris/openapi.json")
    assert code == 200 and "/v2/models/iris/predict" in doc["paths"]
    code, _, listing = await served.fetch("/v2/models")
    assert listing["models"][0]["aliases"] == {"production": "2"}
    code, _, _ = await served.fetch("/v2/models/iris/versions/1/ready")
    assert code == 200
    code, _, data = await served.fetch("/v2/models/iris/predict", method="GET")
    assert code == 405 and data["error_type"] == "http_error"


async def test_not_ready_while_loading_is_503_with_retry_after(iris_clf):
    release = threading.Event()

    def loader():
        release.wait(30)
        return [(Model(iris_clf, task="classification", name="iris", labels=IRIS_LABELS), [])]

    server = ModelServer(authorizer=NoAuth())
    s = Served(server)
    loading = asyncio.ensure_future(server.load(loader))
    try:
        for path in ("/v2/health/ready", "/v2/models/iris"):
            code, headers, data = await s.fetch(path)
            assert code == 503 and headers["Retry-After"] == "1"
            assert data["error_type"] == "not_ready"
        assert (await s.fetch("/v2/health/live"))[0] == 200
        release.set()
        await loading
        assert (await s.fetch("/v2/health/ready"))[0] == 200
        assert (await s.fetch("/v2/models/iris"))[0] == 200
    finally:
        release.set()
        s.http.stop()


async def test_model_failure_is_500_without_traceback(caplog):
    server = ModelServer(authorizer=NoAuth())
    server.add(Model(Failing(), task="classification", name="bad", labels=["a", "b"]))
    server.mark_ready()
    s = Served(server)
    code, _, data = await s.fetch("/v2/models/bad/predict", {"records": [{"x0": 1, "x1": 2}]})
    s.http.stop()
    assert code == 500
    assert data == {
        "error": "the model failed: RuntimeError",
        "error_type": "model_error",
        "details": {},
    }
    # the server log keeps the cause for the operator
    assert "secret path" in caplog.text


async def test_timeout_answers_504_and_frees_the_server():
    stuck = Blocking()
    server = ModelServer(authorizer=NoAuth(), timeout=0.2, workers=1, max_pending=1)
    server.add(Model(stuck, task="classification", name="slow", labels=["a", "b"]))
    server.mark_ready()
    s = Served(server)
    body = {"records": [{"x0": 1, "x1": 2}]}
    try:
        code, _, data = await s.fetch("/v2/models/slow/predict", body)
        assert code == 504 and data["error_type"] == "timeout"
        assert stuck.entered.is_set() and not stuck.release.is_set()
        # the event loop answers while the model thread is still stuck...
        assert (await s.fetch("/v2/health/live"))[0] == 200
        # ...and refuses more work at once instead of queueing it behind the stuck call
        code, headers, data = await s.fetch("/v2/models/slow/predict", body)
        assert code == 503 and data["error_type"] == "overloaded" and "Retry-After" in headers
        stuck.release.set()
        for _ in range(500):  # wait for the thread to hand back its slot
            if server.runner.pending == 0:
                break
            await asyncio.sleep(0.01)
        code, _, data = await s.fetch("/v2/models/slow/predict", body)
        assert code == 200 and data["predictions"][0]["label"] == "b"
    finally:
        stuck.release.set()
        s.http.stop()


class FakeHubUser(RequestHandler):
    """The hub's GET /hub/api/user: who owns the token in the Authorization header."""

    USERS = {
        "alice-token": {"name": "alice", "scopes": ["custom:mlfactory:models:iris:predict"]},
        "bob-token": {"name": "bob", "scopes": ["read:users"]},
        "ops-token": {"name": "ops", "scopes": ["custom:mlfactory:models:predict"]},
    }

    def get(self):
        token = self.request.headers.get("Authorization", "").split()[-1]
        user = self.USERS.get(token)
        if user is None:
            self.set_status(403)
            self.finish({"status": 403, "message": "bad token"})
            return
        self.finish(user)


async def test_hub_auth_scope_per_model(iris_clf):
    hub_port = free_port()
    hub = HTTPServer(Application([(r"/hub/api/user", FakeHubUser)]))
    hub.listen(hub_port, "127.0.0.1")
    auth = HubScopeAuth(api_url=f"http://127.0.0.1:{hub_port}/hub/api", api_token="svc-token")
    server = ModelServer(authorizer=auth)
    for name in ("iris", "other"):
        server.add(
            Model(
                iris_clf,
                task="classification",
                name=name,
                labels=IRIS_LABELS,
                input_schema=IRIS_FEATURES,
            )
        )
    server.mark_ready()
    s = Served(server)
    rec = {"records": iris_records(np.ones((1, 4)))}
    try:
        assert (await s.fetch("/v2/models/iris/predict", rec, token="alice-token"))[0] == 200
        code, _, data = await s.fetch("/v2/models/other/predict", rec, token="alice-token")
        assert code == 403
        assert "custom:mlfactory:models:other:predict" in data["error"]
        assert (await s.fetch("/v2/models/iris", token="bob-token"))[0] == 403
        assert (await s.fetch("/v2/models/iris", token="nobody"))[0] == 401
        assert (await s.fetch("/v2/models/other", token="ops-token"))[0] == 200
        _, _, listing = await s.fetch("/v2/models", token="alice-token")
        assert [m["name"] for m in listing["models"]] == ["iris"]
    finally:
        s.http.stop()
        hub.stop()


def test_hub_custom_scopes_are_valid_jupyterhub_scopes():
    from jupyterhub.scopes import _custom_scope_pattern

    scopes = hub_custom_scopes(["iris", "churn-v2"])
    assert all(_custom_scope_pattern.match(s) for s in scopes)
    assert scopes["custom:mlfactory:models:predict"]["subscopes"] == [
        "custom:mlfactory:models:churn-v2:predict",
        "custom:mlfactory:models:iris:predict",
    ]
