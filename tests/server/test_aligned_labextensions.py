"""The server extension puts the labextensions rebuilt for this JupyterLab first in
JupyterLab's search path (JupyterLab takes the first extension of a name it finds)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from jupyterlab.labapp import LabApp
from mlfactory.server.app import prefer_labextensions


def _server_with(lab: LabApp) -> SimpleNamespace:
    return SimpleNamespace(extension_manager=SimpleNamespace(extension_apps={"jupyterlab": {lab}}))


def test_the_folder_goes_first_once(tmp_path: Path):
    lab = LabApp(extra_labextensions_path=["/admin/extensions"])
    prefer_labextensions(_server_with(lab), tmp_path)
    prefer_labextensions(_server_with(lab), tmp_path)  # a second link adds nothing
    assert lab.extra_labextensions_path == [str(tmp_path), "/admin/extensions"]


def test_a_missing_folder_changes_nothing(tmp_path: Path):
    lab = LabApp()
    prefer_labextensions(_server_with(lab), tmp_path / "not-built")
    assert lab.extra_labextensions_path == []


def test_without_jupyterlab_nothing_happens(tmp_path: Path):
    server = SimpleNamespace(extension_manager=SimpleNamespace(extension_apps={}))
    prefer_labextensions(server, tmp_path)  # no error
