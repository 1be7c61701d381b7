"""``python -m mlfactory.model_api.serve`` as a process: loads a repository, serves, stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from mlfactory.model_api import Client, Model, ModelRepository, ModelUnavailable, NotReady

from tests.ports import free_port

from .conftest import IRIS_FEATURES, IRIS_LABELS, iris_records


def test_serves_a_repository_with_a_token(tmp_path, iris, iris_model):
    X, _ = iris
    repo = ModelRepository(tmp_path / "models")
    repo.publish(iris_model, alias="production")
    repo.publish(iris_model)
    port = free_port()
    env = {**os.environ, "MLFACTORY_MODEL_API_TOKEN": "proc-token"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlfactory.model_api.serve",
            "--repository",
            str(tmp_path / "models"),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    waited: list[float] = []
    try:
        # the client's own 503 retry waits for readiness; connection refused means not up yet
        with Client(
            f"http://127.0.0.1:{port}",
            token="proc-token",
            retries=50,
            sleep=lambda s: (waited.append(s), time.sleep(0.1)),
        ) as c:
            for _ in range(300):  # up to ~30 s on a loaded CI machine
                try:
                    res = c.model("iris").predict(iris_records(X[:1]))
                    break
                except (ConnectionRefusedError, NotReady):
                    time.sleep(0.1)
            else:
                pytest.fail("the server did not come up")
            assert res.model_version == "1" and res.model_alias == "production"
            assert c.model("iris", 2).predict(X[:1]).model_version == "2"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "proc-token" not in out


def test_refuses_to_start_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFACTORY_MODEL_API_TOKEN"}
    r = subprocess.run(
        [sys.executable, "-m", "mlfactory.model_api.serve", "--repository", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "MLFACTORY_MODEL_API_TOKEN" in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlfactory.model_api.serve",
            "--repository",
            str(tmp_path),
            "--auth",
            "none",
            "--host",
            "0.0.0.0",  # noqa: S104 - the refusal under test
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "only allowed with --host 127.0.0.1" in r.stderr


TOKEN = "proc-token"  # noqa: S105 - a test server's token


def _get(port: int, path: str) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - a local test server
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_broken_packages_are_skipped_reported_and_the_rest_served(tmp_path, iris, iris_clf):
    """One broken package (missing artefact, newer format, bad alias) used to make the server
    exit at start-up, taking every model down."""
    import yaml

    X, _ = iris
    repo = ModelRepository(tmp_path / "models")

    def publish(name: str, alias: str | None = None) -> None:
        model = Model(
            iris_clf,
            task="classification",
            name=name,
            labels=IRIS_LABELS,
            input_schema=IRIS_FEATURES,
        )
        repo.publish(model, alias=alias)

    publish("iris", alias="production")
    for name in ("half", "newer", "aliased", "garbled"):
        publish(name)
    publish("half")  # half v2: its artefact goes missing
    (tmp_path / "models" / "half" / "2" / "model.joblib").unlink()
    card = tmp_path / "models" / "newer" / "1" / "model.yaml"
    card.chmod(0o644)
    data = yaml.safe_load(card.read_text())
    data.update(format_version=99, mlfactory_version="7.0.0")
    card.write_text(yaml.safe_dump(data))
    (tmp_path / "models" / "aliased" / "aliases.yaml").write_text("production: 7\n")
    (tmp_path / "models" / "garbled" / "aliases.yaml").write_text("production: latest\n")

    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlfactory.model_api.serve",
                "--repository",
                str(tmp_path / "models"),
                "--port",
                str(port),
                "--log-level",
                "WARNING",
            ],
            env={**os.environ, "MLFACTORY_MODEL_API_TOKEN": TOKEN},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:  # a real process starting: poll its health route
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if _get(port, "/v2/health/ready")[0] == 200:
                    break
            except (ConnectionError, urllib.error.URLError):
                pass
            time.sleep(0.1)

        with Client(f"http://127.0.0.1:{port}", token=TOKEN) as c:
            res = c.model("iris").predict(iris_records(X[:1]))
            assert res.labels == ["setosa"] and res.model_alias == "production"
            assert c.model("half", 1).predict(X[:1]).model_version == "1"
            assert c.model("aliased", 1).predict(X[:1]).model_version == "1"
            with pytest.raises(ModelUnavailable) as e:  # typed, and not retried
                c.model("half").predict(X[:1])
            assert "model.joblib is missing" in str(e.value)

        def unavailable(path: str) -> str:
            code, body = _get(port, path)
            assert code == 503, body
            assert body["error_type"] == "model_unavailable"
            assert body["details"]["ready"] is False
            assert str(tmp_path) not in body["error"]  # paths relative to the repository
            return body["details"]["reason"]

        assert "half/2/model.joblib is missing" in unavailable("/v2/models/half/ready")
        assert _get(port, "/v2/models/half/versions/1/ready")[0] == 200
        reason = unavailable("/v2/models/newer/ready")
        assert "mlfactory 7.0.0" in reason and "this is mlfactory" in reason
        assert "names version 7, which does not exist" in unavailable("/v2/models/aliased/ready")
        assert "must name a version number" in unavailable("/v2/models/garbled/ready")
        assert "must name a version number" in unavailable("/v2/models/garbled/versions/1/ready")
        assert _get(port, "/v2/models/nope/ready")[0] == 404

        code, listing = _get(port, "/v2/models")
        assert code == 200
        ready = {m["name"]: m["ready"] for m in listing["models"]}
        assert ready == {
            "aliased": False,
            "garbled": False,
            "half": False,
            "iris": True,
            "newer": False,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    log = log_path.read_text()
    for what in ("half version 2", "newer version 1", "aliased version production", "garbled"):
        assert f"not serving {what}: " in log, log
