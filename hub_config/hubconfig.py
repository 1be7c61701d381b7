"""Turning the platform config into JupyterHub configuration.

``apply_platform`` sets what every deployment shares (templates, the profile a
server starts with); ``apply_embedded_defaults`` adds the one-machine defaults
(SQLite under the data folder, the local proxy, local accounts, local
processes). The shipped ``jupyterhub_config.py`` calls both; on Kubernetes
(Zero to JupyterHub ``hub.extraConfig``) only ``apply_platform`` is applied.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .platform_config import PlatformConfig, Profile, data_dir, format_size

TEMPLATES = Path(__file__).with_name("templates")
DEFAULT_PORT = 8000


def profile_summary(profile: Profile) -> dict[str, Any]:
    """What a server is told about its own profile (``MLFACTORY_PROFILE``)."""
    return {
        "slug": profile.slug,
        "display_name": profile.display_name,
        "cpu": profile.cpu,
        "memory": format_size(profile.memory),
        "gpu": profile.gpu,
        "disk": format_size(profile.disk),
        "price_per_hour": profile.price_per_hour,
    }


def admin_username(env: Mapping[str, str] = os.environ) -> str:
    return env.get("MLFACTORY_ADMIN_USER") or "admin"


def apply_platform(c: Any, platform: PlatformConfig) -> None:
    """Settings every mlfactory hub shares, whatever the backend."""
    c.JupyterHub.template_paths = [str(TEMPLATES), *list(c.JupyterHub.get("template_paths", []))]
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars.setdefault("mlfactory_platform_name", platform.platform.name)
    c.JupyterHub.template_vars = template_vars
    c.Spawner.default_url = "/lab"
    # The default profile until the resource picker chooses one per spawn.
    profile = platform.default_profile
    environment = dict(c.Spawner.get("environment", {}))
    environment["MLFACTORY_PROFILE"] = json.dumps(profile_summary(profile))
    c.Spawner.environment = environment
    c.Spawner.cpu_limit = profile.cpu
    c.Spawner.mem_limit = profile.memory


def find_proxy_command() -> str | None:
    """configurable-http-proxy from this environment (the run command installs it there)."""
    local = Path(sys.prefix) / "bin" / "configurable-http-proxy"
    return str(local) if local.exists() else shutil.which("configurable-http-proxy")


def apply_embedded_defaults(c: Any, env: Mapping[str, str] = os.environ) -> None:
    """One machine, nothing else to start: SQLite, the local proxy, local accounts."""
    data = data_dir()
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    ip = env.get("MLFACTORY_IP") or "127.0.0.1"
    port = int(env.get("MLFACTORY_PORT") or DEFAULT_PORT)
    c.JupyterHub.bind_url = f"http://{ip}:{port}"
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.db_url = f"sqlite:///{data / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(data / "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.pid_file = str(data / "jupyterhub-proxy.pid")
    proxy = find_proxy_command()
    if proxy:
        c.ConfigurableHTTPProxy.command = [proxy]

    c.JupyterHub.authenticator_class = "mlfactory"
    c.MLFactoryAuthenticator.accounts_db_url = f"sqlite:///{data / 'accounts.sqlite'}"
    c.Authenticator.admin_users = {admin_username(env)}
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars["mlfactory_signup_enabled"] = True
    template_vars["mlfactory_local_accounts"] = True
    c.JupyterHub.template_vars = template_vars

    c.JupyterHub.spawner_class = "mlfactory-local"
    c.MLFactoryLocalSpawner.workspace_root = str(data / "workspaces")
    c.MLFactoryLocalSpawner.log_root = str(data / "logs" / "servers")


def running_on_kubernetes(env: Mapping[str, str] = os.environ) -> bool:
    return bool(env.get("KUBERNETES_SERVICE_HOST"))
