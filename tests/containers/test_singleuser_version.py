"""The server refuses an image whose mlfactory is not the hub's."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

from mlfactory.spawner.singleuser import version_problem


def test_same_or_unset_version_is_fine():
    assert version_problem("0.1.0", "0.1.0") is None
    assert version_problem(None, "0.1.0") is None
    assert version_problem("", "0.1.0") is None


def test_mismatch_names_both_versions_and_the_fix():
    problem = version_problem("0.2.0", "0.1.0")
    assert problem == (
        "This image has mlfactory 0.1.0 but the hub runs 0.2.0; "
        "ask an admin to rebuild the image (mlfactory images build)"
    )


def test_server_command_exits_before_jupyter_on_mismatch():
    env = {**os.environ, "MLFACTORY_HUB_VERSION": "9.9.9"}
    done = subprocess.run(
        [sys.executable, "-m", "mlfactory.spawner.singleuser"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    own = importlib.metadata.version("mlfactory")
    assert done.returncode == 1
    assert f"This image has mlfactory {own} but the hub runs 9.9.9" in done.stderr
    assert "Starting jupyter" not in done.stderr and "ServerApp" not in done.stderr
