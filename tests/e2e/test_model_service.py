"""A published model served as a hub service on a real hub: a user whose role grants the
predict scope gets labels and probabilities; a user without it is refused."""

from __future__ import annotations

import json
import time

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

pytestmark = [pytest.mark.hub, pytest.mark.browser]

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
EVE_PASSWORD = "eve-has-no-models-1"


@pytest.fixture(scope="module")
def model_hub():
    from mlfactory.model_api import Model, ModelRepository
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = Model(
        LogisticRegression(max_iter=1000).fit(X, y),
        task="classification",
        name="iris",
        labels=["setosa", "versicolor", "virginica"],
        input_schema=FEATURES,
    )
    data, config_path = prepare_hub("models", accounts={"eve": EVE_PASSWORD})
    repo = data / "models"
    ModelRepository(repo).publish(model, alias="production")
    config = example_config()
    config["models"] = {"repository": str(repo), "names": ["iris"], "users": ["admin"]}
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
    deadline = time.monotonic() + 60
    while admin.request.get(f"{api}/health/ready").status != 200:
        assert time.monotonic() < deadline, "the models service did not become ready"
        time.sleep(0.5)  # a real service process starting
    record = dict(zip(FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
    r = admin.request.post(
        f"{api}/models/iris/predict", data=json.dumps({"records": [record]}), headers=headers
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
        data=json.dumps({"records": [record]}),
        headers={"Authorization": f"token {api_token(eve, hub, 'eve')}"},
    )
    assert r.status == 403, r.text()
    assert "Traceback" not in r.text()
