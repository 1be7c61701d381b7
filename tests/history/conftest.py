"""Fixtures for the notebook-history tests: a workspace in a temporary folder with a real
git repository underneath, a clock the test moves, and notebooks to version."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from mlfactory.server.history.extension import NotebookHistory
from mlfactory.server.history.workspace import Workspace


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


def write_notebook(root: Path, name: str, sources: list[str], **kw) -> Path:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(s) for s in sources],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        **kw,
    )
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def sources(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells]


def git(cwd: Path, *args: str) -> str:
    """Plain git for setting the scene and checking results (not the code under test)."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


@pytest.fixture(autouse=True)
async def diff_workers():
    """Diff workers belong to the test's event loop: end them with it."""
    from mlfactory.server.history.diffing import WORKERS

    yield WORKERS
    await WORKERS.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def history(tmp_path: Path) -> NotebookHistory:
    return NotebookHistory(
        credentials_dir=str(tmp_path / "credentials"),
        author_name="Ada",
        author_email="ada@example.org",
        allow_local_remotes=True,
        timeout=30,
    )


@pytest.fixture
def workspace(history: NotebookHistory, root: Path, clock: Clock) -> Workspace:
    ws = history.workspace(str(root))
    ws.clock = clock
    return ws
