"""use() in a kernel: built-ins, the sources the spawner named and the server's manifest
(published folders included), one catalog per process, rebuilt when the manifest changes."""

from __future__ import annotations

import json
import subprocess
import sys

import mlfactory.components as components
import pytest
from mlfactory.components import Source, use
from mlfactory.components.snippet import snippet
from mlfactory.components.sources import write_manifest

from .test_catalog import make


@pytest.fixture(autouse=True)
def kernel_env(tmp_path, monkeypatch):
    """A kernel started by a server whose cache is in tmp_path, with no sources yet."""
    monkeypatch.setenv("MLFACTORY_COMPONENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFACTORY_COMPONENT_SOURCES", raising=False)
    monkeypatch.setattr(components, "_cached", None)
    monkeypatch.setattr(components, "_loaded", {})
    return tmp_path / "cache"


def test_builtin_by_exact_version_and_imported_once():
    fn = use("time_split@1.0.0")
    assert fn.__name__ == "time_split"
    assert use("time_split@1.0.0") is fn
    assert use("time_split@1.0") is fn  # the same version through a line reference


def test_sources_from_the_environment(tmp_path, monkeypatch):
    make(tmp_path / "team", "tidy", "2.0.0")
    monkeypatch.setenv(
        "MLFACTORY_COMPONENT_SOURCES",
        json.dumps([{"name": "team", "path": str(tmp_path / "team")}]),
    )
    assert use("tidy@2.0.0")(1) == "2.0.0"
    assert components.kernel_catalog().resolve("tidy").source == "team"


def test_the_manifest_wins_and_a_new_one_is_picked_up(tmp_path, kernel_env):
    make(tmp_path / "published", "shared_fn", "0.1.0")
    with pytest.raises(LookupError, match="no component named 'shared_fn'.*components panel"):
        use("shared_fn@0.1.0")
    first = components.kernel_catalog()
    assert components.kernel_catalog() is first  # cached per process
    write_manifest(kernel_env, [Source("published", tmp_path / "published", "published")])
    assert use("shared_fn@0.1.0")(0) == "0.1.0"
    assert components.kernel_catalog() is not first


def test_a_pin_that_does_not_exist_says_what_does():
    with pytest.raises(LookupError, match=r"'time_split@9.9.9' matches no version .* 1.0.0"):
        use("time_split@9.9.9")


def test_an_inserted_cell_runs_in_a_fresh_kernel_process(tmp_path, kernel_env):
    """The snippet, placeholders filled, in a new interpreter with the server's manifest."""
    make(tmp_path / "org", "tidy", "1.2.3")
    write_manifest(kernel_env, [Source("org", tmp_path / "org", "git")])
    cat = components.kernel_catalog()
    cell = snippet(cat.resolve("tidy@1.2.3")).replace("x = ...", "x = 5")
    cell += "print(out)\n"
    done = subprocess.run(
        [sys.executable, "-c", cell],
        env={"MLFACTORY_COMPONENT_CACHE": str(kernel_env), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.2.3"
