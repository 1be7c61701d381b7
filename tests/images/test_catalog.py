"""``mlfactory images check`` and ``list``: the catalog against the real tree (and broken
copies of it), and the listing against the real registry."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from mlfactory.hub.cli import main
from mlfactory.spawner.image_build import (
    check_catalog,
    installed_versions,
    load_catalog,
    mlfactory_version,
    read_pins,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of images/ to break."""
    shutil.copytree(ROOT / "images", tmp_path / "images")
    return tmp_path


def test_real_tree_passes(capsys):
    assert check_catalog(ROOT) == []
    assert main(["images", "check", "--root", str(ROOT)]) == 0
    assert "OK" in capsys.readouterr().out


def test_minimal_pins_are_the_hubs_versions():
    pins, unpinned = read_pins(ROOT / "images" / "minimal" / "requirements.txt")
    hub = installed_versions()
    assert unpinned == []
    assert pins["jupyterlab"] == hub["jupyterlab"] and pins["tornado"] == hub["tornado"]


def test_parent_chain():
    catalog = load_catalog(ROOT)
    assert [i.slug for i in catalog.chain("pytorch")] == ["minimal", "python-ds", "pytorch"]


def test_unpinned_requirement_fails(tree, capsys):
    req = tree / "images" / "python-ds" / "requirements.txt"
    req.write_text(req.read_text() + "seaborn>=0.13\n")
    assert main(["images", "check", "--root", str(tree)]) == 1
    err = capsys.readouterr().err
    assert "python-ds: images/python-ds/requirements.txt: 'seaborn>=0.13' is not pinned" in err


def test_missing_dockerfile_and_unlisted_dockerfile_fail(tree):
    (tree / "images" / "pytorch" / "Dockerfile").unlink()
    (tree / "images" / "r-lang").mkdir()
    (tree / "images" / "r-lang" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    problems = check_catalog(tree)
    assert "pytorch: its Dockerfile images/pytorch/Dockerfile does not exist" in problems
    assert "images/r-lang/Dockerfile has no entry in images/catalog.yaml" in problems


def test_minimal_pin_differing_from_the_hub_fails(tree):
    hub = {**installed_versions(), "jupyterlab": "4.0.0"}
    problems = check_catalog(tree, installed=hub)
    assert any(
        p.startswith("minimal: pins jupyterlab==") and "hub runs jupyterlab 4.0.0" in p
        for p in problems
    )


def test_bad_parent_and_loop_fail(tree):
    catalog = tree / "images" / "catalog.yaml"
    text = catalog.read_text().replace("parent: python-ds", "parent: pytorch")
    catalog.write_text(text.replace("parent: minimal", "parent: nowhere"))
    problems = check_catalog(tree)
    assert "python-ds: parent 'nowhere' is not in the catalog" in problems
    assert any(p.startswith("pytorch:") and "loop" in p for p in problems)


def test_list_shows_registry_tags(container_engine, minimal_image, capsys):
    assert main(["images", "list", "--registry", container_engine.registry]) == 0
    out = capsys.readouterr().out
    tag = minimal_image.rsplit(":", 1)[1]
    assert tag.startswith(f"{mlfactory_version()}-")
    line = next(ln for ln in out.splitlines() if ln.startswith("minimal "))
    assert tag in line and "mlfactory/minimal" in line


def test_list_with_registry_down_fails(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["images", "list", "--registry", f"http://127.0.0.1:{port}"]) == 1
    assert f"127.0.0.1:{port} cannot be reached" in capsys.readouterr().err
