"""The jupyter-server extension that runs inside each user's server (JupyterLab).

It serves the platform's REST endpoints under ``/mlfactory/api/``; the app lives in
:mod:`mlfactory.server.app`, the handlers and their route tables next to it.
"""

from __future__ import annotations

from typing import Any

from .app import MLFactoryServerApp

__all__ = ["MLFactoryServerApp"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "mlfactory.server", "app": MLFactoryServerApp}]
