"""A published model served as a hub service on a real hub: a user whose role grants the
predict scope gets labels and probabilities; a user without it is refused; a broken package
beside it does not take the service down; a token stops working within seconds of its
user's deletion or its expiry; only the health routes answer without a token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from .conftest import (
    ADMIN_PASSWORD,
    api_token,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    start_hub,
)
from .helpers import poll

pytestmark = [pytest.mark.hub, pytest.mark.browser]

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
EVE_PASSWORD = "eve-has-no-models-1"


@pytest.fixture(scope="module")
def model_hub():
    from mlfactory.model_api import Model, ModelRepository
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(X, y)

    def iris_model(name: str) -> Model:
        return Model(
            clf,
            task="classification",
            name=name,
            labels=["setosa", "versicolor", "virginica"],
            input_schema=FEATURES,
        )

    data, config_path = prepare_hub("models", accounts={"eve": EVE_PASSWORD})
    repo = data / "models"
    ModelRepository(repo).publish(iris_model("iris"), alias="production")
    # a package whose artefact went missing: served beside iris, refused with its reason
    ModelRepository(repo).publish(iris_model("broken"))
    Path(repo, "broken", "1", "model.joblib").unlink()
    config = example_config()
    config["models"] = {
        "repository": str(repo),
        "names": ["iris"],
        "users": ["admin"],
        "groups": ["ml-engineering"],
    }
    config_path.write_text(yaml.safe_dump(config))
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def test_model_served_behind_the_hub_with_a_scope(model_hub, browser):
    hub = model_hub
    admin = browser.new_context().new_page()
    log_in(admin, hub, "admin", ADMIN_PASSWORD, next_url="/hub/home")
    headers = {"Authorization": f"token {api_token(admin, hub, 'admin')}"}
    api = f"{hub.url}/services/models/v2"
    poll(lambda: admin.request.get(f"{api}/health/ready").status == 200, 60, "models ready")
    record = dict(zip(FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
    # a dict is sent as JSON with its Content-Type, as clients do
    r = admin.request.post(
        f"{api}/models/iris/predict", data={"records": [record]}, headers=headers
    )
    assert r.status == 200, r.text()
    body = r.json()
    assert (body["model_name"], body["model_version"]) == ("iris", "1")
    assert body["decision_rule"] == "argmax" and body["api_version"] == "v2"
    (row,) = body["predictions"]
    assert row["label"] == "setosa", row
    # the raw values come with the label, from the same call
    assert set(row["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert row["score"] == max(row["probabilities"].values())

    eve = browser.new_context().new_page()
    log_in(eve, hub, "eve", EVE_PASSWORD, next_url="/hub/home")
    r = eve.request.post(
        f"{api}/models/iris/predict",
        data={"records": [record]},
        headers={"Authorization": f"token {api_token(eve, hub, 'eve')}"},
    )
    assert r.status == 403, r.text()
    assert "Traceback" not in r.text()

    # the broken package did not stop the service; it says why it is not served
    status, body = call("GET", f"{api}/models/broken/ready", headers["Authorization"])
    assert status == 503 and body["error_type"] == "model_unavailable", body
    assert body["details"]["ready"] is False
    assert "broken/1/model.joblib is missing" in body["details"]["reason"]
    assert "broken" in hub.log() and "not serving broken version 1" in hub.log()

    # only the health routes are public
    status, body = call("GET", api, None)
    assert status == 401 and body["error_type"] == "unauthorized" and "version" not in body
    status, body = call("GET", api, headers["Authorization"])
    assert status == 200 and body["name"] == "mlfactory-model-api"
    assert call("GET", f"{api}/health/live", None)[0] == 200

    # a body declared as another type is refused before the model runs, even if it parses
    status, body = call(
        "POST",
        f"{api}/models/iris/predict",
        headers["Authorization"],
        body={"records": [record]},
        content_type="text/csv",
    )
    assert status == 415 and body["error_type"] == "unsupported_media_type", body
    assert "application/json" in body["error"]


def call(
    method: str,
    url: str,
    auth: str | None,
    body: object = None,
    content_type: str = "application/json",
) -> tuple[int, dict]:
    """One request with ``Authorization: <auth>``; (status, JSON body or {})."""
    headers = {"Authorization": auth} if auth else {}
    data = None
    if body is not None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - the test's own hub
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    return status, json.loads(raw) if raw else {}


def _new_user_token(hub, admin_auth: str, name: str, expires_in: int) -> str:
    """A user in a group that may predict, and a token of theirs made by the admin."""
    hub_api = f"{hub.url}/hub/api"
    assert call("POST", f"{hub_api}/users/{name}", admin_auth, {})[0] == 201
    status, _ = call(
        "POST", f"{hub_api}/groups/ml-engineering/users", admin_auth, {"users": [name]}
    )
    assert status == 200
    status, body = call(
        "POST",
        f"{hub_api}/users/{name}/tokens",
        admin_auth,
        {"note": "e2e models", "expires_in": expires_in},
    )
    assert status == 201, body
    return body["token"]


class Caller:
    """The admin's token, the service's API, and predict / whoami for another token."""

    def __init__(self, hub, browser) -> None:
        admin = browser.new_context().new_page()
        log_in(admin, hub, "admin", ADMIN_PASSWORD, next_url="/hub/home")
        self.hub = hub
        self.admin_auth = f"token {api_token(admin, hub, 'admin')}"
        self.api = f"{hub.url}/services/models/v2"
        poll(
            lambda: call("GET", f"{self.api}/health/ready", None)[0] == 200,
            60,
            "the models service ready",
        )

    def predict(self, token: str) -> int:
        record = dict(zip(FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
        url = f"{self.api}/models/iris/predict"
        return call("POST", url, f"token {token}", {"records": [record]})[0]

    def hub_knows(self, token: str) -> bool:
        return call("GET", f"{self.hub.url}/hub/api/user", f"token {token}")[0] == 200


def test_a_deleted_users_token_stops_working_within_seconds(model_hub, browser):
    # HubAuth's default cache kept it working for 300 s after the user was deleted
    c = Caller(model_hub, browser)
    token = _new_user_token(model_hub, c.admin_auth, "mallory", expires_in=600)
    assert c.predict(token) == 200
    assert call("DELETE", f"{model_hub.url}/hub/api/users/mallory", c.admin_auth)[0] == 204
    assert not c.hub_knows(token)
    poll(lambda: c.predict(token) == 401, 30, "the models service refuses a deleted user's token")


def test_an_expired_token_stops_working_when_the_hub_refuses_it(model_hub, browser):
    # used before it expired, it kept working for 300 s after
    c = Caller(model_hub, browser)
    token = _new_user_token(model_hub, c.admin_auth, "nina", expires_in=6)
    assert c.predict(token) == 200
    poll(lambda: not c.hub_knows(token), 30, "the hub refuses the expired token")
    # the service never reuses the hub's answer past the token's expires_at
    assert c.predict(token) == 401
