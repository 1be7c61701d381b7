"""The HTTP server: routes, versions in every response, errors, readiness, timeouts, auth."""

from __future__ import annotations

import asyncio
import http.client
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

from tests.ports import free_port

from .conftest import IRIS_FEATURES, IRIS_LABELS, iris_records
from .helpers import Blocking, Counting, Failing

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
        if body is not None:
            # what clients send; tornado's own default for a POST is a form type
            h.setdefault("Content-Type", "application/json")
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
    # the server log keeps the cause for the operator: the record carries the exception
    # and its chained cause (whatever formatter the log ends up in)
    causes = [
        r.exc_info[1].__cause__ or r.exc_info[1].__context__
        for r in caplog.records
        if r.exc_info and r.exc_info[1] is not None
    ]
    assert any("secret path" in str(c) for c in causes), caplog.text


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


async def test_server_metadata_needs_a_token_and_only_health_is_public(served):
    for token in (None, "wrong"):
        for path in ("/v2", "/v2/"):
            code, headers, data = await served.fetch(path, token=token)
            assert code == 401, (path, token, data)
            assert data["error_type"] == "unauthorized" and "version" not in data
            assert headers["WWW-Authenticate"].startswith("Bearer")
    code, _, meta = await served.fetch("/v2")
    assert code == 200 and meta["name"] == "mlfactory-model-api" and meta["version"]
    # probes need no token, and learn nothing but the state
    assert await served.fetch("/v2/health/live", token=None) == (200, ANY_HEADERS, {"live": True})
    assert (await served.fetch("/v2/health/ready", token=None))[2] == {"ready": True}


class _AnyHeaders:
    def __eq__(self, other):
        return True


ANY_HEADERS = _AnyHeaders()


def _binary_infer(x: np.ndarray) -> tuple[bytes, int]:
    """A Triton binary tensor request: the JSON header, then the raw little-endian FP64s."""
    raw = np.ascontiguousarray(x, "<f8").tobytes()
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP64",
                    "shape": list(x.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    return head + raw, len(head)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/csv",
        "application/x-www-form-urlencoded",  # curl -d without -H
        "text/plain",
        "application/json; charset=latin-1",
        "application/octet-stream",  # binary tensors are for /infer
        "application/xml",
    ],
)
async def test_predict_refuses_a_body_that_is_not_json(served, iris, content_type):
    X, _ = iris
    body = {"records": iris_records(X[:1])}
    code, _, data = await served.fetch(
        "/v2/models/iris/predict", body, headers={"Content-Type": content_type}
    )
    assert code == 415, data
    assert data["error_type"] == "unsupported_media_type"
    assert "Content-Type: application/json" in data["error"]
    assert data["details"] == {"content_type": content_type, "accepted": ["application/json"]}
    assert served.est.total == 0  # the model never ran
    # auth still comes first: a caller without a token learns nothing about the route
    code, _, _ = await served.fetch(
        "/v2/models/iris/predict", body, token=None, headers={"Content-Type": content_type}
    )
    assert code == 401


async def test_predict_and_infer_read_json_and_triton_binary_types(served, iris):
    X, _ = iris
    body = orjson.dumps({"records": iris_records(X[:1])})
    for content_type in ("application/json", "Application/JSON; charset=UTF-8"):
        code, _, data = await served.fetch(
            "/v2/models/iris/predict", body, headers={"Content-Type": content_type}
        )
        assert code == 200, (content_type, data)

    def post_without_content_type(path: str, payload: bytes, extra: dict) -> tuple[int, dict]:
        # tornado's and urllib's clients add a form type; http.client sends none, as
        # tritonclient does
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        try:
            conn.request(
                "POST", path, body=payload, headers={"Authorization": f"Bearer {TOKEN}", **extra}
            )
            r = conn.getresponse()
            assert r.getheader("Content-Type") == "application/json"
            return r.status, orjson.loads(r.read())
        finally:
            conn.close()

    code, data = await asyncio.to_thread(
        post_without_content_type, "/v2/models/iris/predict", body, {}
    )
    assert code == 200, data
    binary, head = _binary_infer(X[:2])
    code, data = await asyncio.to_thread(
        post_without_content_type,
        "/v2/models/iris/infer",
        binary,
        {"Inference-Header-Content-Length": str(head)},
    )
    assert code == 200, data
    code, _, data = await served.fetch(
        "/v2/models/iris/infer",
        binary,
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(head),
        },
    )
    assert code == 200, data
    labels = next(o for o in data["outputs"] if o["name"] == "label")["data"]
    assert labels == ["setosa", "setosa"]
    # SageMaker's Triton gives the header length in the media type
    code, _, data = await served.fetch(
        "/v2/models/iris/infer",
        binary,
        headers={
            "Content-Type": f"application/vnd.sagemaker-triton.binary+json;json-header-size={head}"
        },
    )
    assert code == 200, data
    code, _, data = await served.fetch(
        "/v2/models/iris/infer", binary, headers={"Content-Type": "text/csv"}
    )
    assert code == 415 and data["error_type"] == "unsupported_media_type"
    assert "application/octet-stream" in data["details"]["accepted"]


def test_hub_custom_scopes_are_valid_jupyterhub_scopes():
    from jupyterhub.scopes import _custom_scope_pattern

    scopes = hub_custom_scopes(["iris", "churn-v2"])
    assert all(_custom_scope_pattern.match(s) for s in scopes)
    assert scopes["custom:mlfactory:models:predict"]["subscopes"] == [
        "custom:mlfactory:models:churn-v2:predict",
        "custom:mlfactory:models:iris:predict",
    ]


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class HubState:
    """A JupyterHub's answers as the real one gives them: GET /hub/api/user (403 for a token
    it refuses) and GET /hub/api/users/<name>/tokens/<id> (the token model with
    ``expires_at``; 403 without ``read:tokens`` on the owner)."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict] = {}
        self.calls = 0

    def add(self, token: str, name: str, *, expires_at: str | None = None, read_tokens=True):
        self.tokens[token] = {
            "name": name,
            "id": f"a{len(self.tokens) + 1}",
            "expires_at": expires_at,
            "scopes": ["custom:mlfactory:models:predict"]
            + ([f"read:tokens!user={name}"] if read_tokens else []),
        }


class FakeHubSelf(RequestHandler):
    def initialize(self, state: HubState) -> None:
        self.state = state

    def token(self) -> dict | None:
        return self.state.tokens.get(self.request.headers.get("Authorization", "").split()[-1])

    def refuse(self) -> None:
        self.set_status(403)
        self.finish({"status": 403, "message": "Not authorized"})

    def get(self) -> None:
        self.state.calls += 1
        t = self.token()
        if t is None:
            return self.refuse()
        self.finish(
            {
                "kind": "user",
                "name": t["name"],
                "admin": False,
                "groups": [],
                "token_id": t["id"],
                "session_id": None,
                "scopes": t["scopes"],
            }
        )


class FakeHubTokenModel(FakeHubSelf):
    def get(self, name: str, token_id: str) -> None:
        self.state.calls += 1
        t = self.token()
        if t is None or f"read:tokens!user={name}" not in t["scopes"]:
            return self.refuse()
        if t["name"] != name or t["id"] != token_id:
            self.set_status(404)
            return self.finish({"status": 404, "message": "No such token"})
        self.finish(
            {"user": name, "id": token_id, "kind": "api_token", "expires_at": t["expires_at"]}
        )


@pytest.fixture
async def hub_served(iris_clf):
    state = HubState()
    hub_port = free_port()
    hub = HTTPServer(
        Application(
            [
                (r"/hub/api/user", FakeHubSelf, {"state": state}),
                (r"/hub/api/users/([^/]+)/tokens/([^/]+)", FakeHubTokenModel, {"state": state}),
            ]
        )
    )
    hub.listen(hub_port, "127.0.0.1")
    clock = FakeClock()
    auth = HubScopeAuth(
        api_url=f"http://127.0.0.1:{hub_port}/hub/api",
        api_token="svc-token",
        cache_seconds=5,
        clock=clock,
    )
    server = ModelServer(authorizer=auth)
    server.add(
        Model(
            iris_clf,
            task="classification",
            name="iris",
            labels=IRIS_LABELS,
            input_schema=IRIS_FEATURES,
        )
    )
    server.mark_ready()
    s = Served(server)
    s.hub, s.clock = state, clock
    yield s
    s.http.stop()
    hub.stop()
    server.runner.shutdown()


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat() + "Z"


async def test_hub_token_of_a_deleted_user_is_refused_after_a_few_seconds(hub_served):
    s = hub_served
    s.hub.add("alice-token", "alice")
    rec = {"records": iris_records(np.ones((1, 4)))}
    assert (await s.fetch("/v2/models/iris/predict", rec, token="alice-token"))[0] == 200
    asked = s.hub.calls
    assert asked == 2  # who owns the token, then the token's expiry
    assert (await s.fetch("/v2/models/iris/predict", rec, token="alice-token"))[0] == 200
    assert s.hub.calls == asked  # the answer is reused...
    del s.hub.tokens["alice-token"]  # DELETE /hub/api/users/alice
    s.clock.now += 5  # ...for cache_seconds, not HubAuth's default 300 s
    code, _, data = await s.fetch("/v2/models/iris/predict", rec, token="alice-token")
    assert code == 401 and data["error_type"] == "unauthorized"
    assert "expired" in data["error"] and "deleted" in data["error"]
    # a refused token is not remembered as good: every request asks again
    assert (await s.fetch("/v2/models/iris", token="alice-token"))[0] == 401
    assert s.hub.calls == asked + 2


async def test_hub_token_is_never_reused_past_its_expiry(hub_served):
    s = hub_served
    s.hub.add("short-token", "bob", expires_at=_iso(s.clock.now + 2))
    assert (await s.fetch("/v2/models/iris", token="short-token"))[0] == 200
    s.clock.now += 1.9
    assert (await s.fetch("/v2/models/iris", token="short-token"))[0] == 200
    calls = s.hub.calls
    assert calls == 2  # the second request was answered from the cache
    del s.hub.tokens["short-token"]  # the hub refuses it once it has expired
    s.clock.now += 0.2  # past expires_at, well within cache_seconds
    assert (await s.fetch("/v2/models/iris", token="short-token"))[0] == 401
    assert s.hub.calls == calls + 1


async def test_hub_token_without_read_tokens_is_cached_for_cache_seconds_only(hub_served):
    s = hub_served
    s.hub.add("narrow-token", "carol", expires_at=_iso(s.clock.now + 60), read_tokens=False)
    assert (await s.fetch("/v2/models/iris", token="narrow-token"))[0] == 200
    s.clock.now += 4.9
    assert (await s.fetch("/v2/models/iris", token="narrow-token"))[0] == 200
    assert s.hub.calls == 2  # the token model was refused: its expiry is unknown
    s.clock.now += 0.2
    assert (await s.fetch("/v2/models/iris", token="narrow-token"))[0] == 200
    assert s.hub.calls == 4  # asked again after cache_seconds
    # a clock that jumps back does not stretch the cache
    s.clock.now -= 100
    assert (await s.fetch("/v2/models/iris", token="narrow-token"))[0] == 200
    assert s.hub.calls == 6


async def test_hub_token_lookups_are_shared_by_concurrent_requests(hub_served):
    s = hub_served
    s.hub.add("busy-token", "dave")
    codes = await asyncio.gather(
        *(s.fetch("/v2/models/iris", token="busy-token") for _ in range(8))
    )
    assert [c for c, _, _ in codes] == [200] * 8
    assert s.hub.calls == 2
