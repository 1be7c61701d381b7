"""Shared test setup.

Loads the jupyter-server fixtures (jp_fetch & co) for the server-extension tests
and puts this environment's bin folder first on PATH, where the run command
installs configurable-http-proxy and jupyterhub-singleuser.
"""

import os
import sys
from pathlib import Path

pytest_plugins = ["pytest_jupyter.jupyter_server"]

os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
