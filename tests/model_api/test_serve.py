"""``python -m mlfactory.model_api.serve`` as a process: loads a repository, serves, stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from mlfactory.model_api import Client, ModelRepository, NotReady

from .conftest import iris_records
from .helpers import free_port


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


def test_exits_with_both_versions_named_when_a_package_cannot_load(tmp_path, iris_model):
    import yaml

    repo = ModelRepository(tmp_path)
    repo.publish(iris_model)
    card = tmp_path / "iris" / "1" / "model.yaml"
    card.chmod(0o644)
    data = yaml.safe_load(card.read_text())
    data.update(format_version=99, mlfactory_version="7.0.0")
    card.write_text(yaml.safe_dump(data))
    env = {**os.environ, "MLFACTORY_MODEL_API_TOKEN": "t"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlfactory.model_api.serve",
            "--repository",
            str(tmp_path),
            "--port",
            str(free_port()),
            "--log-level",
            "CRITICAL",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert "mlfactory 7.0.0" in r.stderr and "this is mlfactory" in r.stderr
