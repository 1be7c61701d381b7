"""Model packages: numbered immutable versions, aliases, trust boundary, version messages."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import yaml
from mlfactory.model_api import (
    Model,
    ModelRepository,
    NotFound,
    PackageError,
    PackageVersionError,
    load_package,
)
from mlfactory.model_api.package import PACKAGE_FORMAT

from .helpers import ToyGenerator

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_publish_and_load_round_trip(tmp_path, iris, iris_model):
    X, _ = iris
    repo = ModelRepository(tmp_path)
    v = repo.publish(
        iris_model, created_by="ada", source_notebook="iris.ipynb", now=NOW, alias="production"
    )
    assert v == 1
    card = yaml.safe_load((tmp_path / "iris" / "1" / "model.yaml").read_text())
    assert card["task"] == "classification"
    assert card["labels"] == ["setosa", "versicolor", "virginica"]
    assert card["framework"]["name"] == "scikit-learn" and card["framework"]["version"]
    assert card["created_by"] == "ada" and card["source_notebook"] == "iris.ipynb"
    assert card["created_at"].startswith("2026-01-02T03:04:05")
    assert [i["name"] for i in card["inputs"]][0] == "sepal_length"
    loaded = repo.load("iris", "production")
    assert loaded.version == "1"
    assert np.array_equal(
        loaded.predict(X[:3]).probabilities, iris_model.predict(X[:3]).probabilities
    )


def test_versions_are_numbered_and_immutable_aliases_move(tmp_path, iris_model):
    repo = ModelRepository(tmp_path)
    assert [repo.publish(iris_model, now=NOW) for _ in range(3)] == [1, 2, 3]
    assert repo.resolve("iris") == (3, None)  # newest without a production alias
    repo.set_alias("iris", "production", 2)
    assert repo.resolve("iris") == (2, "production")
    repo.set_alias("iris", "production", 3)
    assert repo.resolve("iris", "production") == (3, "production")
    assert repo.resolve("iris", 1) == (1, None)
    folder = tmp_path / "iris" / "1"
    assert all((p.stat().st_mode & 0o222) == 0 for p in folder.iterdir())
    with pytest.raises(NotFound, match="versions: 1, 2, 3; aliases: production"):
        repo.resolve("iris", "staging")
    with pytest.raises(ValueError, match="alias"):
        repo.set_alias("iris", "7", 1)


def test_incomplete_version_without_card_is_ignored(tmp_path, iris_model):
    repo = ModelRepository(tmp_path)
    repo.publish(iris_model, now=NOW)
    (tmp_path / "iris" / "2").mkdir()  # a publisher died before writing model.yaml
    assert repo.versions("iris") == [1]
    assert repo.publish(iris_model, now=NOW) == 3


def test_refuses_packages_outside_the_root(tmp_path, iris_model):
    outside = tmp_path / "outside"
    ModelRepository(outside).publish(iris_model, now=NOW)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(PackageError, match="outside the model repository"):
        load_package(outside / "iris" / "1", root=root)
    # a symlink inside the root that points out is refused too
    (root / "iris").symlink_to(outside / "iris")
    with pytest.raises(PackageError, match="outside the model repository"):
        ModelRepository(root).load("iris")
    with pytest.raises(NotFound):
        ModelRepository(root).load("../outside/iris")


def test_tampered_artifact_is_not_unpickled(tmp_path, iris_model):
    repo = ModelRepository(tmp_path)
    repo.publish(iris_model, now=NOW)
    art = tmp_path / "iris" / "1" / "model.joblib"
    art.chmod(0o644)
    art.write_bytes(art.read_bytes() + b"\0")
    with pytest.raises(PackageError, match="SHA-256"):
        repo.load("iris")


def _edit_card(path, **changes):
    path.chmod(0o644)
    card = yaml.safe_load(path.read_text())
    card.update(changes)
    path.write_text(yaml.safe_dump(card))


def test_newer_package_format_names_both_versions(tmp_path, iris_model):
    repo = ModelRepository(tmp_path)
    repo.publish(iris_model, now=NOW)
    _edit_card(
        tmp_path / "iris" / "1" / "model.yaml",
        format_version=PACKAGE_FORMAT + 1,
        mlfactory_version="9.0.0",
    )
    with pytest.raises(PackageVersionError) as e:
        repo.load("iris")
    msg = str(e.value)
    assert "mlfactory 9.0.0" in msg and "this is mlfactory 0" in msg
    assert f"up to {PACKAGE_FORMAT}" in msg


def test_unloadable_pickle_names_both_environments(tmp_path, iris_model):
    repo = ModelRepository(tmp_path)
    repo.publish(iris_model, now=NOW)
    card = tmp_path / "iris" / "1" / "model.yaml"
    art = tmp_path / "iris" / "1" / "model.joblib"
    art.chmod(0o644)
    art.write_bytes(b"not a pickle")
    import hashlib

    _edit_card(
        card,
        artifact={
            "file": "model.joblib",
            "serializer": "joblib",
            "sha256": hashlib.sha256(b"not a pickle").hexdigest(),
        },
        mlfactory_version="0.0.9",
    )
    with pytest.raises(PackageError) as e:
        repo.load("iris")
    msg = str(e.value)
    assert "saved with mlfactory 0.0.9" in msg and "this is mlfactory" in msg
    assert "scikit-learn" in msg


def test_card_typos_are_refused(tmp_path, iris_model):
    repo = ModelRepository(tmp_path)
    repo.publish(iris_model, now=NOW)
    _edit_card(tmp_path / "iris" / "1" / "model.yaml", lables=["x"])
    with pytest.raises(PackageError, match="lables"):
        repo.load("iris")


def test_callable_seq2seq_package(tmp_path):
    repo = ModelRepository(tmp_path)
    repo.publish(Model(ToyGenerator(), task="seq2seq", name="rev"), now=NOW)
    loaded = repo.load("rev")
    assert loaded.adapter.name == "callable"
    assert loaded.predict(["abc"]).generated_text == [["cba"]]


def test_package_from_an_older_mlfactory_with_the_same_format_loads(tmp_path, iris, iris_model):
    X, _ = iris
    repo = ModelRepository(tmp_path)
    repo.publish(iris_model, now=NOW)
    _edit_card(tmp_path / "iris" / "1" / "model.yaml", mlfactory_version="0.0.1")
    loaded = repo.load("iris")
    assert loaded.card.mlfactory_version == "0.0.1"
    assert loaded.predict(X[:1]).labels == ["setosa"]
