"""Who may call a model published after the hub started, on a real hub with the shipped
config (which serves the registry's folder by default): its owner at once, a member of a
group the owner grants once granted, and nobody else, told what would let them in. The
model's name is in no ``models.names``, so no per-model scope exists for it."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from .conftest import ADMIN_PASSWORD, api_token, discard_hub, log_in, prepare_hub, start_hub
from .helpers import poll
from .test_model_service import call

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PASSWORDS = {"ann": "ann-owns-models-1", "gus": "gus-is-granted-1", "ola": "ola-outsider-1"}


@pytest.fixture(scope="module")
def access_hub():
    data, config_path = prepare_hub("model-access", accounts=PASSWORDS)
    config = yaml.safe_load(config_path.read_text())
    assert config["models"] == {}  # the shipped block: served by default
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def tokens(hub, browser) -> dict[str, str]:
    out = {}
    for user, password in {"admin": ADMIN_PASSWORD, **PASSWORDS}.items():
        page = browser.new_context().new_page()
        log_in(page, hub, user, password, next_url="/hub/home")
        out[user] = f"token {api_token(page, hub, user)}"
        page.context.close()
    return out


def test_owner_and_granted_group_may_call_a_model_published_after_hub_start(access_hub, browser):
    from mlfactory.model_api import Model, publish
    from sklearn.linear_model import LinearRegression

    hub = access_hub
    auth = tokens(hub, browser)
    # gus joins a group of the hub; ola is in none
    status, body = call(
        "POST", f"{hub.url}/hub/api/groups/ml-engineering/users", auth["admin"], {"users": ["gus"]}
    )
    assert status == 200, body

    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 2))
    model = Model(
        LinearRegression().fit(X, X @ [2.0, -1.0]),
        task="regression",
        name="demand",
        input_schema=["a", "b"],
    )
    answer = publish(
        model,
        test_input=X[:2],
        registry=f"{hub.url}/services/mlfactory",
        token=auth["ann"].removeprefix("token "),
    )
    predict = answer["version"]["urls"]["predict"]
    assert predict.endswith("/services/models/v2/models/demand/versions/1/predict")
    url = f"{hub.url}/services/models/v2/models/demand/predict"
    record = {"records": [{"a": 1.0, "b": 1.0}]}

    # served within the reload interval, and its owner may call it
    poll(lambda: call("POST", url, auth["ann"], record)[0] == 200, 60, "served to its owner")
    status, body = call("POST", url, auth["ann"], record)
    assert body["model_name"] == "demand" and np.isclose(body["predictions"][0]["prediction"], 1.0)

    # not yet granted: refused, told what would let them in
    for who in ("gus", "ola"):
        status, body = call("POST", url, auth[who], record)
        assert status == 403, (who, body)
        assert (
            "'demand'" in body["error"]
            and "custom:mlfactory:models:demand:predict" in (body["error"])
        )

    registry = f"{hub.url}/services/mlfactory/api/models/demand"
    status, body = call("PATCH", registry, auth["gus"], {"predict_groups": ["ml-engineering"]})
    assert status == 403, body  # only the owner (or an admin) grants
    status, body = call("PATCH", registry, auth["ann"], {"predict_groups": ["ml-engineer"]})
    assert status == 400 and "'ml-engineer'" in body["error"], body
    status, body = call("PATCH", registry, auth["ann"], {"predict_groups": ["ml-engineering"]})
    assert status == 200 and body["predict_groups"] == ["ml-engineering"], body
    assert call("GET", registry, auth["ola"])[1]["model"]["predict_groups"] == ["ml-engineering"]

    poll(lambda: call("POST", url, auth["gus"], record)[0] == 200, 60, "served to the group")
    status, body = call("POST", url, auth["ola"], record)
    assert status == 403 and "ml-engineering" in body["error"] and "ask ann" in body["error"]
    assert body["details"]["predict_groups"] == ["ml-engineering"]
    # the listing shows each caller only what they may call
    listing = f"{hub.url}/services/models/v2/models"
    for who, names in [("gus", ["demand"]), ("ola", [])]:
        assert [m["name"] for m in call("GET", listing, auth[who])[1]["models"]] == names
    # a token ann restricted to reading her servers (as she might give another service) is not
    # hers for her models: refused, naming the scope it lacks
    status, body = call(
        "POST",
        f"{hub.url}/hub/api/users/ann/tokens",
        auth["ann"],
        {"note": "for another service", "scopes": ["read:servers!user"], "expires_in": 900},
    )
    assert status == 201, body
    assert "access:services!service=models" not in body["scopes"]
    status, body = call("POST", url, f"token {body['token']}", record)
    assert status == 403, body
    assert "access:services!service=models" in body["error"], body
    # the service log never carries a token
    assert auth["ola"].removeprefix("token ") not in hub.log()
