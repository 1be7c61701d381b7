"""Where the platform runs: its config file, its folders, the hub's address and first admin.

Every part asks here, so each path is defined once. Values come from the environment
(``MLFACTORY_CONFIG``, ``MLFACTORY_DATA``, ``MLFACTORY_IP``, ``MLFACTORY_PORT``,
``MLFACTORY_ADMIN_USER``) at each call: the ``mlfactory`` command and the tests set them
before the hub, the spawner or the platform service asks.

The data folder (``$MLFACTORY_DATA``, else ``./.mlfactory``)::

    hub/              0700: the hub's and the service's databases and secrets
    logs/servers/     0700: each server's output log
    runtime/servers/  the spawner's journal of running servers (the service reads it)
    workspaces/       one home folder per user
    volumes/          the container backend's sized home volumes (an ext4 file each)
    engine/           Podman's and the loopback registry's settings, when mlfactory starts them
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

PACKAGED_CONFIG = Path(__file__).with_name("mlfactory.yaml")
DEFAULT_PORT = 8000


def config_path() -> Path:
    """The platform config file: ``$MLFACTORY_CONFIG``, else the example shipped with
    mlfactory."""
    return Path(os.environ.get("MLFACTORY_CONFIG") or PACKAGED_CONFIG)


def data_dir() -> Path:
    """Where platform state lives: ``$MLFACTORY_DATA``, else ``./.mlfactory``."""
    return Path(os.environ.get("MLFACTORY_DATA") or ".mlfactory").resolve()


def hub_state_dir(data: Path | None = None) -> Path:
    """The hub's private folder (0700): its databases, cookie secret and proxy pid file, the
    platform service's database and published components."""
    return (data or data_dir()) / "hub"


def models_repository(repository: str | None = None, data: Path | None = None) -> Path:
    """The model registry's folder: ``models.repository`` when set, else the hub's private
    part of the data folder."""
    return Path(repository) if repository else hub_state_dir(data) / "models"


def logs_dir(data: Path | None = None) -> Path:
    return (data or data_dir()) / "logs"


def server_logs_dir() -> Path:
    """Each server's output log (``<server>.log``)."""
    return logs_dir() / "servers"


def workspaces_dir() -> Path:
    """One home folder per user."""
    return data_dir() / "workspaces"


def volumes_dir() -> Path:
    """The container backend's per-user home volumes."""
    return data_dir() / "volumes"


def engine_dir() -> Path:
    """Settings and logs of the Podman service and registry mlfactory starts itself."""
    return data_dir() / "engine"


def journal_dir() -> Path:
    """The journal of running servers: the spawner writes it, the platform service reads it."""
    return data_dir() / "runtime" / "servers"


def accounts_db_url(data: Path | None = None) -> str:
    """The local accounts' database (``mlfactory hub`` and the embedded hub)."""
    return f"sqlite:///{hub_state_dir(data) / 'accounts.sqlite'}"


def platform_db_url() -> str:
    """The platform service's database when ``accounting.database_url`` is empty."""
    return f"sqlite:///{hub_state_dir() / 'platform.sqlite'}"


def prepare_data_dir(data: Path | None = None) -> Path:
    """Lay out the state folder; returns the hub's private part.

    ``<data>`` is traverse-only (0711) so that per-user OS accounts can reach their homes
    under ``<data>/workspaces``; the hub's databases and secrets live in ``<data>/hub``
    (0700) and logs in ``<data>/logs`` (0700), out of every user's reach.
    """
    data = data or data_dir()
    hub_state = hub_state_dir(data)
    ours = not data.exists() or hub_state.is_dir()  # never re-mode a folder like /tmp
    data.mkdir(parents=True, exist_ok=True)
    if ours:
        data.chmod(0o711)  # noqa: S103 - traverse only, no listing
    for private in (hub_state, logs_dir(data)):
        private.mkdir(exist_ok=True, mode=0o700)
        private.chmod(0o700)
    return hub_state


def hub_address(env: Mapping[str, str] = os.environ) -> tuple[str, int]:
    """Where the embedded hub listens: ``$MLFACTORY_IP`` (default 127.0.0.1) and
    ``$MLFACTORY_PORT`` (default 8000). Raises ValueError for a port that is not a number."""
    return env.get("MLFACTORY_IP") or "127.0.0.1", int(env.get("MLFACTORY_PORT") or DEFAULT_PORT)


def admin_username(env: Mapping[str, str] = os.environ) -> str:
    """The first admin's name: ``$MLFACTORY_ADMIN_USER``, else ``admin``."""
    return env.get("MLFACTORY_ADMIN_USER") or "admin"


def choose_backend(
    platform: Any, probe: Callable[[Any], str | None], env: Mapping[str, str] = os.environ
) -> tuple[str, str]:
    """Where servers run, ``("local" | "container", why)``, for the banner and the hub.

    The config's ``platform.backend`` decides when it says ``local`` or ``container``. With
    ``auto``, ``$MLFACTORY_BACKEND`` (local or container) decides when set, else containers
    run when ``probe(platform)`` finds them ready (None: the engine answers and has the
    default image), and local processes when it says what is missing.
    """
    backend = platform.platform.backend
    if backend != "auto":
        return backend, f"platform.backend is {backend!r}"
    forced = env.get("MLFACTORY_BACKEND", "")
    if forced in ("local", "container"):
        return forced, f"MLFACTORY_BACKEND is {forced!r}"
    problem = probe(platform)
    if problem is None:
        return "container", f"the container engine at {platform.containers.engine} answers"
    return "local", problem
