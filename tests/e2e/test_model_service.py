"""A published model served as a hub service on a real hub: a user whose role grants the
predict scope gets labels and probabilities; a user without it is refused."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import yaml
from mlfactory.hub.account_store import AccountStore
from mlfactory.hub.accounts import hash_password
from mlfactory.hub.hubconfig import accounts_db_url, prepare_data_dir
from mlfactory.hub.platform_config import PACKAGED_CONFIG

from .conftest import ADMIN_PASSWORD, api_token, hub_data_dir, log_in, start_hub, stop_hub

pytestmark = [pytest.mark.hub, pytest.mark.browser]

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
EVE_PASSWORD = "eve-has-no-models-1"


@pytest.fixture(scope="module")
def model_hub():
    from mlfactory.model_api import Model, ModelRepository
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = hub_data_dir("models")
    X, y = load_iris(return_X_y=True)
    model = Model(
        LogisticRegression(max_iter=1000).fit(X, y),
        task="classification",
        name="iris",
        labels=["setosa", "versicolor", "virginica"],
        input_schema=FEATURES,
    )
    repo = data / "models"
    ModelRepository(repo).publish(model, alias="production")
    config = yaml.safe_load(PACKAGED_CONFIG.read_text())
    config["models"] = {"repository": str(repo), "names": ["iris"], "users": ["admin"]}
    config_path = data.with_suffix(".yaml")
    config_path.write_text(yaml.safe_dump(config))
    prepare_data_dir(data)
    store = AccountStore(accounts_db_url(data))
    store.create_account("eve", hash_password(EVE_PASSWORD), authorized=True)
    store.close()
    hub = start_hub(data, config=config_path)
    yield hub
    stop_hub(hub)
    shutil.rmtree(data, ignore_errors=True)
    config_path.unlink()


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
