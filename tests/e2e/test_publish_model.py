"""Publishing a model from a notebook, on a real hub, its proxy, the platform service, the
models service, three single-user servers and Chromium: alice trains a scikit-learn
classifier, presses "Publish model", checks the schema and test prediction and publishes;
the Models panel shows version 1 with its provenance, and she lets bob's group call it.
bob runs the panel's SDK snippet in his notebook and gets labels with probabilities.
alice publishes again: version 2 is served without a restart; she moves ``production`` to
it in the panel and the alias URL answers with version 2. carol, in no granted group and
without a predict scope, gets 403. Any console error in the three pages fails the test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from .conftest import (
    api_token,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)
from .helpers import HubClient, poll
from .test_lab_console import Console

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PASSWORDS = {
    "alice": "alice-publishes-models-1",
    "bob": "bob-calls-models-22",
    "carol": "carol-has-no-scope-333",
}
FILE_USER = ("dave", "dave-publishes-a-saved-file-4")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
MODELS_TAB = '.jp-SideBar [data-id="mlfactory-models"]'
LAB_TIMEOUT_MS = 120_000
KERNEL_S = 180
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

TRAIN = f"""\
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
iris = load_iris(as_frame=True)
X = iris.data.set_axis({FEATURES!r}, axis=1)
y = iris.target.map(dict(enumerate(iris.target_names)))
clf = LogisticRegression(max_iter=1000).fit(X, y)
print("trained", clf.score(X, y) > 0.9)
"""
RETRAIN = "clf = LogisticRegression(max_iter=1000, C=0.5).fit(X, y)\nprint('retrained')"


@pytest.fixture(scope="module")
def hub() -> Iterator:
    """The shipped config, serving the registry's repository; no role grants any predict
    scope: bob may call alice's model once she grants his group "forecasters" in the panel,
    carol is in no such group."""
    config = example_config()
    config["groups"].append(
        {
            "name": "forecasters",
            "description": "Forecasters",
            "profiles": ["cpu-small"],
            "members": ["bob"],
        }
    )
    data, config_path = prepare_hub("publish-model", config, dict([*PASSWORDS.items(), FILE_USER]))
    repo = data / "models"
    repo.mkdir()
    config["models"] = {"repository": str(repo), "reload_interval": 1}
    config_path.write_text(yaml.safe_dump(config))
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def notebook(*sources: str) -> dict:
    nb = new_notebook(
        metadata={"kernelspec": KERNELSPEC}, cells=[new_code_cell(s) for s in sources]
    )
    return json.loads(json.dumps(nb))


class Lab:
    """One user's JupyterLab page on a notebook, with what its console said."""

    def __init__(self, browser, hub, user: str, path: str) -> None:
        self.user = user
        self.console = Console()
        self.page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        self.page.on("console", self.console.on_console)
        self.page.on("pageerror", self.console.on_page_error)
        self.requests: list[str] = []
        self.page.on("requestfinished", lambda r: self.requests.append(f"{r.method} {r.url}"))
        password = dict([*PASSWORDS.items(), FILE_USER])[user]
        log_in(self.page, hub, user, password, next_url="/hub/home")
        self.page.goto(f"{hub.url}/user/{user}/lab/tree/{path}")
        try:
            self.page.locator(MODELS_TAB).wait_for(timeout=LAB_TIMEOUT_MS)
            self.cells().first.wait_for(timeout=LAB_TIMEOUT_MS)
            # a cell run before the kernel is connected is dropped: wait for "… | Idle"
            idle = self.page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle"))
            idle.wait_for(timeout=LAB_TIMEOUT_MS)
        except BaseException:
            screenshot(self.page, f"publish-model-{user}-lab")
            raise

    def cells(self):
        return self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")

    def run(self, index: int) -> str:
        """Run cell ``index`` in place and return its output text once it has answered."""
        cell = self.cells().nth(index)
        prompt = cell.locator(".jp-InputPrompt")
        before = prompt.text_content().strip()
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Control+Enter")

        def answered() -> bool:
            now = prompt.text_content().strip()
            return bool(re.fullmatch(r"\[\d+\]:", now)) and now != before

        poll(answered, KERNEL_S, lambda: f"{self.user}'s cell {index} run")
        return cell.locator(".jp-OutputArea").inner_text()

    def models_panel(self):
        panel = self.page.get_by_test_id("mlfactory-models")
        if not panel.is_visible():
            self.page.locator(MODELS_TAB).click()
        panel.wait_for(state="visible")
        return panel

    def model(self, name: str):
        """The model's entry in the panel, refreshed and opened."""
        panel = self.models_panel()
        with self.page.expect_response(lambda r: "/mlfactory/models?" in r.url):
            panel.get_by_test_id("mlfactory-models-refresh").click()
        item = panel.locator(f'[data-testid="mlfactory-model-item"][data-model="{name}"]')
        item.wait_for()
        if item.get_attribute("data-open") != "true":
            with self.page.expect_response(lambda r: f"/mlfactory/models/{name}?" in r.url):
                item.get_by_test_id("mlfactory-model-toggle").click()
        item.get_by_test_id("mlfactory-model-aliases").wait_for()
        return item


def publish_from_dialog(lab: Lab, name: str) -> str:
    """Press Publish model, name the model, Check, Publish; the dialog's closing words."""
    page = lab.page
    page.get_by_test_id("mlfactory-publish-model-button").click()
    form = page.get_by_test_id("mlfactory-publish-model-form")
    form.wait_for(timeout=60_000)
    assert form.get_by_test_id("mlfactory-publish-model-source").input_value() == "clf"
    assert form.get_by_test_id("mlfactory-publish-model-task").input_value() == "classification"
    labels = form.get_by_test_id("mlfactory-publish-model-labels").input_value()
    assert labels == "setosa, versicolor, virginica"
    assert form.get_by_test_id("mlfactory-publish-model-example").input_value() == "X"
    form.get_by_test_id("mlfactory-publish-model-name").fill(name)
    form.get_by_test_id("mlfactory-publish-model-description").fill("Iris <b>species</b>")
    form.get_by_test_id("mlfactory-publish-model-check").click()
    prediction = form.get_by_test_id("mlfactory-publish-model-prediction")
    prediction.wait_for(timeout=KERNEL_S * 1000)
    assert "label" in prediction.locator("tr").first.inner_text()
    assert prediction.locator("tr").count() == 6  # the header and the first five rows
    assert all(f in form.inner_text() for f in FEATURES)  # the input schema
    form.get_by_test_id("mlfactory-publish-model-publish").click()
    done = form.get_by_test_id("mlfactory-publish-model-done")
    done.wait_for(timeout=KERNEL_S * 1000)
    text = done.inner_text()
    screenshot(page, f"publish-model-dialog-{name}")
    page.locator(".jp-Dialog-footer button.jp-mod-reject").click()
    return text


def predict(hub, token: str, ref: str) -> tuple[int, dict]:
    import requests

    record = dict(zip(FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
    r = requests.post(
        f"{hub.url}/services/models/v2/models/iris/versions/{ref}/predict",
        json={"records": [record]},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    return r.status_code, (r.json() if r.content else {})


def test_publish_call_republish_move_alias_and_refuse(hub, browser):
    admin = HubClient(hub)
    for user in PASSWORDS:
        r = admin.post(f"/hub/api/users/{user}")
        assert r.status_code in (201, 409), r.text
    for user in PASSWORDS:
        admin.spawn(user=user, profile="cpu-small")
    for user in PASSWORDS:
        admin.wait_ready(user=user, timeout=240)
    clients = {u: HubClient(hub, u, p) for u, p in PASSWORDS.items()}
    r = clients["alice"].put(
        "/user/alice/api/contents/train.ipynb",
        json={"type": "notebook", "content": notebook(TRAIN, RETRAIN)},
    )
    assert r.status_code in (200, 201), r.text
    # alice keeps a History of her workspace: the version she publishes from is recorded
    assert clients["alice"].post("/user/alice/mlfactory/history/init").status_code == 200
    r = clients["alice"].post(
        "/user/alice/mlfactory/history/versions", json={"path": "train.ipynb", "message": "train"}
    )
    assert r.status_code == 201, r.text
    history_id = r.json()["version"]["id"]

    labs: list[Lab] = []
    try:
        # --- alice trains, publishes, and sees version 1 in the Models panel -------------
        alice = Lab(browser, hub, "alice", "train.ipynb")
        labs.append(alice)
        assert "trained True" in alice.run(0)
        done = publish_from_dialog(alice, "iris")
        assert "Published iris version 1" in done, done
        item = alice.model("iris")
        v1 = item.locator('[data-testid="mlfactory-model-version"][data-version="1"]')
        v1.wait_for()
        text = v1.inner_text()
        assert "alice" in text and "serving" in text
        assert "From train.ipynb" in text and history_id[:12] in text
        v1.get_by_test_id("mlfactory-model-move-alias").click()  # production → v1
        poll(
            lambda: "production → v1 (moved by alice" in item.inner_text(),
            60,
            "production at v1 in alice's panel",
        )
        # alice lets the group "forecasters" (bob, not carol) call it
        item.get_by_test_id("mlfactory-model-predict-groups").fill("forecasters")
        with alice.page.expect_response(
            lambda r: "/mlfactory/models/iris?" in r.url and r.request.method == "PATCH"
        ) as answer:
            item.get_by_test_id("mlfactory-model-save-grants").click()
        assert answer.value.status == 200, answer.value.text()
        poll(
            lambda: (
                alice.model("iris").get_by_test_id("mlfactory-model-predict-groups").input_value()
                == "forecasters"
            ),
            60,
            "the grant shown in alice's panel",
        )
        screenshot(alice.page, "publish-model-panel-v1")

        # --- bob calls it from his notebook with the panel's SDK snippet ------------------
        r = clients["bob"].put(
            "/user/bob/api/contents/call.ipynb",
            json={"type": "notebook", "content": notebook("pass", "pass")},
        )
        assert r.status_code in (200, 201), r.text
        bob = Lab(browser, hub, "bob", "call.ipynb")
        labs.append(bob)
        bob_item = bob.model("iris")
        sdk = bob_item.get_by_test_id("mlfactory-snippet-sdk").first.text_content()
        assert f'Client("{hub.url}/services/models"' in sdk and 'model("iris")' in sdk
        # the snippet as is: in bob's server it calls with the server's own token
        setup = (
            "import pandas as pd\n"
            f"X = pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], columns={FEATURES!r})"
        )
        call = sdk + "\nprint(result.labels, result.probabilities.shape, result.model_version)"
        for index, source in ((0, setup), (1, call)):
            cell = bob.cells().nth(index)
            cell.locator(".cm-content").click()
            bob.page.keyboard.press("ControlOrMeta+a")
            bob.page.keyboard.insert_text(source)
        bob.run(0)
        out = bob.run(1)
        assert "['setosa', 'virginica'] (2, 3) 1" in out, out

        # --- alice publishes again: version 2 is served without a restart ------------------
        bob_token = api_token(bob.page, hub, "bob")  # a token from the hub, for plain HTTP
        assert "retrained" in alice.run(1)
        done = publish_from_dialog(alice, "iris")
        assert "Published iris version 2" in done, done
        poll(
            lambda: predict(hub, bob_token, "2")[0] == 200,
            30,
            "version 2 served by the running models service",
        )
        assert predict(hub, bob_token, "production")[1]["model_version"] == "1"

        # --- alice moves production to version 2 in the panel ----------------------------
        item = alice.model("iris")
        v2 = item.locator('[data-testid="mlfactory-model-version"][data-version="2"]')
        v2.get_by_test_id("mlfactory-model-alias-name").fill("production")
        with alice.page.expect_response(lambda r: "/aliases/production" in r.url):
            v2.get_by_test_id("mlfactory-model-move-alias").click()
        poll(
            lambda: "production → v2 (moved by alice" in alice.model("iris").inner_text(),
            60,
            "production at v2 in alice's panel",
        )
        status, body = poll(
            lambda: (
                (got := predict(hub, bob_token, "production"))[1].get("model_version") == "2"
                and got
            ),
            30,
            "the production URL answering with version 2",
        )
        assert status == 200 and body["predictions"][0]["label"] == "setosa"
        screenshot(alice.page, "publish-model-panel-v2")

        # --- alice stops serving version 1, then resumes it -------------------------------
        v1 = alice.model("iris").locator(
            '[data-testid="mlfactory-model-version"][data-version="1"]'
        )
        with alice.page.expect_response(lambda r: "/versions/1?" in r.url):
            v1.get_by_test_id("mlfactory-model-serving").click()
        status, body = poll(
            lambda: (got := predict(hub, bob_token, "1"))[0] != 200 and got,
            30,
            "version 1 withdrawn from the models service",
        )
        assert "alice" in json.dumps(body), body  # who withdrew it
        poll(lambda: "stopped" in v1.inner_text(), 60, "v1 shown as stopped")
        with alice.page.expect_response(lambda r: "/versions/1?" in r.url):
            v1.get_by_test_id("mlfactory-model-serving").click()  # now "Resume serving"
        poll(lambda: predict(hub, bob_token, "1")[0] == 200, 30, "version 1 served again")

        # --- carol, without the predict scope, is refused ----------------------------------
        carol_page = browser.new_context().new_page()
        log_in(carol_page, hub, "carol", PASSWORDS["carol"], next_url="/hub/home")
        status, body = predict(hub, api_token(carol_page, hub, "carol"), "production")
        carol_page.context.close()
        assert status == 403, body
        assert "Traceback" not in json.dumps(body)
    except BaseException:
        for lab in labs:
            screenshot(lab.page, f"publish-model-{lab.user}")
            seen = [r for r in lab.requests if "/mlfactory/" in r][-15:]
            print(f"{lab.user}'s last mlfactory requests:", *seen, sep="\n")  # noqa: T201
        raise
    finally:
        problems = [f"{lab.user}: {p}" for lab in labs for p in lab.console.problems]
        for lab in labs:
            lab.page.context.close()
    if problems:
        pytest.fail(f"{len(problems)} console problem(s):\n" + "\n".join(problems), pytrace=False)


def test_publish_a_saved_model_file(hub, browser):
    """dave saved his classifier with joblib: he picks "Saved file: iris.joblib" in the
    dialog, gives the task and labels (a file tells nothing before it is loaded), checks and
    publishes, and the file's model is served and shown in his Models panel."""
    user, password = FILE_USER
    admin = HubClient(hub)
    r = admin.post(f"/hub/api/users/{user}")
    assert r.status_code in (201, 409), r.text
    admin.spawn(user=user, profile="cpu-small")
    admin.wait_ready(user=user, timeout=240)
    save = TRAIN + "import joblib\njoblib.dump(clf, 'iris.joblib')\ndel clf\n"
    r = HubClient(hub, user, password).put(
        f"/user/{user}/api/contents/save.ipynb",
        json={"type": "notebook", "content": notebook(save)},
    )
    assert r.status_code in (200, 201), r.text
    lab = Lab(browser, hub, user, "save.ipynb")
    try:
        assert "trained True" in lab.run(0)
        page = lab.page
        page.get_by_test_id("mlfactory-publish-model-button").click()
        form = page.get_by_test_id("mlfactory-publish-model-form")
        form.wait_for(timeout=60_000)
        source = form.get_by_test_id("mlfactory-publish-model-source")
        assert source.input_value() == "file:iris.joblib"  # the kernel holds no model now
        assert form.get_by_test_id("mlfactory-publish-model-name").input_value() == "iris"
        form.get_by_test_id("mlfactory-publish-model-name").fill("iris-saved")
        form.get_by_test_id("mlfactory-publish-model-task").select_option("classification")
        form.get_by_test_id("mlfactory-publish-model-labels").fill("setosa, versicolor, virginica")
        form.get_by_test_id("mlfactory-publish-model-check").click()
        prediction = form.get_by_test_id("mlfactory-publish-model-prediction")
        prediction.wait_for(timeout=KERNEL_S * 1000)
        assert prediction.locator("tr").nth(1).inner_text().split()[0] == "setosa"
        form.get_by_test_id("mlfactory-publish-model-publish").click()
        done = form.get_by_test_id("mlfactory-publish-model-done")
        done.wait_for(timeout=KERNEL_S * 1000)
        assert "Published iris-saved version 1" in done.inner_text()
        page.locator(".jp-Dialog-footer button.jp-mod-reject").click()
        v1 = lab.model("iris-saved").locator(
            '[data-testid="mlfactory-model-version"][data-version="1"]'
        )
        v1.wait_for()
        assert "save.ipynb" in v1.inner_text()
        token = api_token(page, hub, user)
        import requests

        record = dict(zip(FEATURES, [6.7, 3.0, 5.2, 2.3], strict=True))
        answer = poll(
            lambda: (
                (
                    r := requests.post(
                        f"{hub.url}/services/models/v2/models/iris-saved/versions/1/predict",
                        json={"records": [record]},
                        headers={"Authorization": f"token {token}"},
                        timeout=60,
                    )
                ).status_code
                == 200
                and r.json()
            ),
            30,
            "the saved file's model served",
        )
        assert answer["predictions"][0]["label"] == "virginica"
    except BaseException:
        screenshot(lab.page, "publish-model-saved-file")
        raise
    finally:
        problems = list(lab.console.problems)
        lab.page.context.close()
    if problems:
        pytest.fail("console problem(s):\n" + "\n".join(problems), pytrace=False)
