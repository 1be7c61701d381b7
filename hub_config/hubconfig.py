"""Turning the platform config into JupyterHub configuration.

``apply_platform`` sets what every deployment shares (templates, the profile a
server starts with); ``apply_embedded_defaults`` adds the one-machine defaults
(SQLite under the data folder, the local proxy, local accounts, local
processes). The shipped ``jupyterhub_config.py`` calls both; on Kubernetes
(Zero to JupyterHub ``hub.extraConfig``) only ``apply_platform`` is applied.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyterhub.utils import random_port
from mlfactory.model_api import resolver
from mlfactory.model_api.lifeline import hub_env
from mlfactory.spawner.engine import containers_problem

from . import collector, listen_backlog
from .group_shares import install as install_group_shares
from .home import HomeSummary
from .platform_config import (
    PlatformConfig,
    accounts_db_url,
    admin_username,
    choose_backend,
    data_dir,
    hub_address,
    prepare_data_dir,
    server_logs_dir,
    workspaces_dir,
)
from .proxy import apply_proxy

TEMPLATES = Path(__file__).with_name("templates")


def apply_platform(c: Any, platform: PlatformConfig, env: Mapping[str, str] = os.environ) -> None:
    """Settings every mlfactory hub shares, whatever the backend."""
    # the hub's calls to IP literals (the service, the proxy's API, servers) skip a thread
    resolver.install()
    c.JupyterHub.template_paths = [str(TEMPLATES), *list(c.JupyterHub.get("template_paths", []))]
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars.setdefault("mlfactory_platform_name", platform.platform.name)
    c.JupyterHub.template_vars = template_vars
    c.Spawner.default_url = "/lab"
    # The platform's groups become hub groups; listed members are added (never removed).
    # An authenticator that manages groups itself (OAuth claims) owns membership instead,
    # and JupyterHub refuses load_groups next to it.
    if not c.Authenticator.get("manage_groups"):
        load_groups = dict(c.JupyterHub.get("load_groups", {}))
        for group in platform.groups:
            load_groups.setdefault(group.name, {"users": list(group.members)})
        c.JupyterHub.load_groups = load_groups
    # Several workspaces per user, each with its own profile.
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 5
    # A hub restart or upgrade must not stop users' servers (Zero to JupyterHub ships the
    # same): the restarted hub finds them again from their saved state, and the spawner's
    # journal and the service's reconcile keep charging the ones it lost track of.
    if "cleanup_servers" not in c.JupyterHub:
        c.JupyterHub.cleanup_servers = False
    # Workspace shares with a group: JupyterHub 6.1 leaves group shares out of tokens.
    install_group_shares()
    hub = starting_hub()
    if hub is not None:
        task = asyncio.get_running_loop().create_task(when_listening(hub))
        _hub_tasks.add(task)  # the loop keeps tasks only weakly
        task.add_done_callback(_hub_tasks.discard)
        # The platform's own loggers in the hub (``mlfactory.*``: the spawner's budget gate,
        # the local host's detection, the listen backlog) write through JupyterHub's handler
        # at its level, as JupyterHub hooks tornado's. Left to the root logger, which has
        # no handler in the hub, their INFO lines were lost and warnings printed bare.
        logging.getLogger("mlfactory").parent = hub.log
    apply_platform_service(c, platform, env)
    apply_model_service(c, platform)
    if platform.platform.backend == "kubernetes":
        apply_kubernetes(c, platform)
        if platform.auth.oidc is not None:
            # The Helm chart's extraConfig calls only apply_platform (apply_embedded_defaults,
            # which applies SSO on one machine, must not run there): without this the chart's
            # default authenticator would silently replace the configured provider.
            from .sso import apply_sso  # oauthenticator and PyJWT: only with a provider

            apply_sso(c, platform.auth.oidc, env, [g.name for g in platform.groups])


_hub_tasks: set[asyncio.Task] = set()


async def when_listening(hub: Any) -> None:
    """Once ``hub`` has bound its sockets in ``JupyterHub.start`` (it has started): widen
    their listen queue, which a class pressing Start at once overflows at tornado's 128,
    and freeze what the hub loaded to start out of the collector, whose full collections
    walked it all in a storm."""
    sockets = await listen_backlog.listening(hub)
    if sockets:
        listen_backlog.widen(sockets)
        collector.freeze_start_up()


def starting_hub() -> Any | None:
    """The JupyterHub now loading this config (it does so inside its event loop), else None:
    a test that builds a config, ``--generate-config``."""
    from jupyterhub.app import JupyterHub

    if not JupyterHub.initialized():
        return None
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    return JupyterHub.instance()


SERVICE_NAME = "mlfactory"
# What the platform service may do through the hub's API, and nothing more: read users,
# groups and servers (with the spawner's state, where the price is), and stop servers.
SERVICE_SCOPES = [
    "list:users",
    "read:users",
    "read:users:groups",
    "list:groups",
    "read:groups",
    "read:servers",
    "admin:server_state",
    "servers",
    # workspace shares (platform_service/workspace_share_api.py): only the service may grant,
    # list and revoke shares, after the platform's sharing rules; users and their servers'
    # tokens hold no ``shares`` scope, so a notebook cannot bypass those rules at the hub.
    # (``shares`` includes ``access:servers``: the hub lets only a holder grant access.)
    "shares",
    # servers' managed identities (platform_service/identity_mint.py): mint a short-lived
    # token of a server's user, scoped to that server, read one to recognise it, revoke it.
    # The hub still refuses any scope the user does not hold.
    "tokens",
]


def apply_model_service(c: Any, platform: PlatformConfig) -> None:
    """Serve the model repository (``models.repository``, else the registry's folder under
    the data dir, empty at first) as the hub service ``models`` (``/services/models/``),
    hub-authenticated, with a predict scope per listed model and one for all of them; a
    model's owner and the groups it granted may call it too (the registry's access.yaml)."""
    models = platform.models
    if not models.serve:
        return
    from mlfactory.model_api.auth import ALL_MODELS_SCOPE, hub_custom_scopes

    from .platform_config import models_repository

    services = [s for s in c.JupyterHub.get("services", []) if s.get("name") != "models"]
    services.append(
        {
            "name": "models",
            "url": f"http://127.0.0.1:{random_port()}",
            "command": [
                sys.executable,
                "-m",
                "mlfactory.model_api.serve",
                "--reload-interval",
                str(models.reload_interval),
                "--repository",
                str(models_repository(models.repository)),
                "--auth",
                "hub",
            ],
            "environment": hub_env(),
        }
    )
    c.JupyterHub.services = services
    c.JupyterHub.custom_scopes = {
        **c.JupyterHub.get("custom_scopes", {}),
        **hub_custom_scopes(models.names),
    }
    # A model's owner and granted groups call it with their own tokens (and servers'), which
    # must hold access to the service: the models service refuses other services' tokens.
    from mlfactory.model_api.auth import SERVICE_ACCESS_SCOPE

    roles = list(c.JupyterHub.get("load_roles", []))
    user_role = next((r for r in roles if r["name"] == "user"), None)
    if user_role is None:
        user_role = {"name": "user", "scopes": ["self"]}
        roles.append(user_role)
    if SERVICE_ACCESS_SCOPE not in user_role["scopes"]:
        user_role["scopes"] = [*user_role["scopes"], SERVICE_ACCESS_SCOPE]
    c.JupyterHub.load_roles = roles
    server_scopes = list(c.Spawner.get("server_token_scopes", []))
    if server_scopes and SERVICE_ACCESS_SCOPE not in server_scopes:
        c.Spawner.server_token_scopes = [*server_scopes, SERVICE_ACCESS_SCOPE]
    if models.users or models.groups:
        roles = [r for r in c.JupyterHub.get("load_roles", []) if r["name"] != "model-users"]
        roles.append(
            {
                "name": "model-users",
                "description": "Predict with every model the models service serves",
                "scopes": [ALL_MODELS_SCOPE, "access:services!service=models"],
                "users": list(models.users),
                "groups": list(models.groups),
            }
        )
        c.JupyterHub.load_roles = roles


def apply_platform_service(c: Any, platform: PlatformConfig, env: Mapping[str, str]) -> None:
    """Run the platform service as a hub-managed service and wire the budget gate to it.

    The spawner (in the hub process) and the service share a secret for the gate; it is
    ``$MLFACTORY_SERVICE_SECRET`` when set (the service runs elsewhere) and random per hub
    start otherwise (the hub restarts its managed service with it).
    """
    from mlfactory.service.scopes import COMPONENTS_REVIEW, CUSTOM_SCOPES
    from mlfactory.spawner.budget_gate import ServiceGate

    secret = env.get("MLFACTORY_SERVICE_SECRET") or secrets.token_urlsafe(32)
    port = int(env.get("MLFACTORY_SERVICE_PORT") or random_port())
    url = env.get("MLFACTORY_SERVICE_URL") or f"http://127.0.0.1:{port}"
    direct = f"{url.rstrip('/')}/services/{SERVICE_NAME}"
    service_env = {
        "MLFACTORY_SERVICE_SECRET": secret,
        "MLFACTORY_DATA": str(data_dir()),
        **hub_env(),
    }
    if env.get("MLFACTORY_CONFIG"):
        service_env["MLFACTORY_CONFIG"] = env["MLFACTORY_CONFIG"]
    services = [s for s in c.JupyterHub.get("services", []) if s.get("name") != SERVICE_NAME]
    services.append(
        {
            "name": SERVICE_NAME,
            "url": url,
            "command": [sys.executable, "-m", "mlfactory.service"],
            "environment": service_env,
            "oauth_no_confirm": True,
            # what a dashboard login may carry: the user's own identity and, where their
            # roles grant them, the mlfactory scopes (filtered ones stay filtered)
            "oauth_client_allowed_scopes": sorted(CUSTOM_SCOPES),
        }
    )
    c.JupyterHub.services = services
    c.JupyterHub.custom_scopes = {**c.JupyterHub.get("custom_scopes", {}), **CUSTOM_SCOPES}
    roles = [r for r in c.JupyterHub.get("load_roles", []) if r["name"] != "mlfactory-service"]
    roles.append(
        {
            "name": "mlfactory-service",
            "description": "The mlfactory platform service: ledger, budgets, alerts",
            "scopes": SERVICE_SCOPES,
            "services": [SERVICE_NAME],
        }
    )
    maintainers = platform.component_review.maintainers
    roles = [r for r in roles if r["name"] != "mlfactory-component-maintainers"]
    if maintainers.users or maintainers.groups:
        roles.append(
            {
                "name": "mlfactory-component-maintainers",
                "description": "Review components users publish into the shared namespace",
                "scopes": [COMPONENTS_REVIEW],
                "users": list(maintainers.users),
                "groups": list(maintainers.groups),
            }
        )
    user_role = next((r for r in roles if r["name"] == "user"), None)
    if user_role is None:
        user_role = {"name": "user", "scopes": ["self"]}
        roles.append(user_role)
    access = f"access:services!service={SERVICE_NAME}"
    # Workspace shares go through the service (its role holds ``shares``), never the user's.
    if access not in user_role["scopes"]:
        user_role["scopes"] = [*user_role["scopes"], access]
    c.JupyterHub.load_roles = roles
    # A server's own token may read its user's budget from the service (the status bar).
    # A maintainer reviews from their server too: the hub gives a server's token only the
    # scopes its user holds, so for everyone else the review scope is dropped.
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        access,
        COMPONENTS_REVIEW,
    ]
    # The browser's token for a server may stop that server (JupyterLab's "Stop" and
    # "Change resources") and see whether it runs; nothing else of the user's.
    c.Spawner.oauth_client_allowed_scopes = ["servers!server"]
    spawner_env = dict(c.Spawner.get("environment", {}))
    spawner_env.setdefault("MLFACTORY_SERVICE_URL", direct)
    c.Spawner.environment = spawner_env
    gate = ServiceGate(direct, secret, platform.accounting.when_unreachable)
    c.MLFactoryLocalSpawner.budget_check = gate
    c.MLFactoryDockerSpawner.budget_check = gate
    c.MLFactoryKubeSpawner.budget_check = gate
    # The home page's servers, budgets and notices: the hub asks the service for the signed-in
    # user over the same secret channel, so the page mints no token per visit.
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars["mlfactory_home"] = HomeSummary(direct, secret)
    c.JupyterHub.template_vars = template_vars


def find_proxy_command() -> str | None:
    """configurable-http-proxy from this environment (the run command installs it there)."""
    local = Path(sys.prefix) / "bin" / "configurable-http-proxy"
    return str(local) if local.exists() else shutil.which("configurable-http-proxy")


def apply_embedded_defaults(
    c: Any, env: Mapping[str, str] = os.environ, platform: PlatformConfig | None = None
) -> None:
    """One machine, nothing else to start: SQLite, the local proxy, local accounts, and
    servers as local processes or, where the config and the engine say so
    (``choose_backend``), as containers."""
    data = data_dir()
    hub_state = prepare_data_dir(data)
    ip, port = hub_address(env)
    c.JupyterHub.bind_url = f"http://{ip}:{port}"
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.db_url = f"sqlite:///{hub_state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(hub_state / "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.pid_file = str(hub_state / "jupyterhub-proxy.pid")
    proxy = find_proxy_command()
    if proxy:
        c.ConfigurableHTTPProxy.command = [proxy]
    if platform is not None:
        apply_proxy(c, platform.proxy, hub_state)  # proxy.kind: traefik replaces the above

    c.JupyterHub.authenticator_class = "mlfactory"
    c.MLFactoryAuthenticator.accounts_db_url = accounts_db_url(data)
    if platform is not None and platform.auth.oidc is not None:
        # local accounts stay; the login page adds the provider's button (hub_config/sso.py)
        groups = [g.name for g in platform.groups]
        from .sso import apply_sso  # oauthenticator and PyJWT (~7 MiB): only with a provider

        apply_sso(c, platform.auth.oidc, env, groups, key_file=hub_state / "jupyterhub_crypt_key")
    c.Authenticator.admin_users = {admin_username(env)}
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars["mlfactory_signup_enabled"] = True
    template_vars["mlfactory_local_accounts"] = True

    backend = choose_backend(platform, containers_problem, env)[0] if platform else "local"
    if backend != "kubernetes":  # apply_platform chose the Kubernetes spawner
        c.JupyterHub.spawner_class = f"mlfactory-{'docker' if backend == 'container' else 'local'}"
    if backend == "container":
        reachable_from_containers(c)
    # Without root there are no per-user OS accounts: tell admins on every hub page.
    template_vars["mlfactory_isolation_off"] = backend == "local" and os.geteuid() != 0
    c.JupyterHub.template_vars = template_vars
    c.MLFactoryLocalSpawner.workspace_root = str(workspaces_dir())
    c.MLFactoryLocalSpawner.log_root = str(server_logs_dir())


def reachable_from_containers(c: Any) -> None:
    """Servers in containers call the hub's API and the platform service at the engine's
    bridge gateway (``MLFactoryDockerSpawner.hub_host``), so both listen on every interface;
    the proxy keeps reaching the hub on loopback. Both still demand a token on every call:
    firewall their ports from other machines (see docs/architecture.md)."""
    everywhere = "0.0.0.0"  # noqa: S104 - see the docstring
    c.JupyterHub.hub_ip = everywhere
    c.JupyterHub.hub_connect_ip = "127.0.0.1"
    for service in c.JupyterHub.get("services", []):
        if service.get("name") == SERVICE_NAME:
            service["environment"] = {
                **service["environment"],
                "MLFACTORY_SERVICE_BIND": everywhere,
            }


def apply_kubernetes(c: Any, platform: PlatformConfig) -> None:
    """``platform.backend: kubernetes``: servers are pods (``mlfactory-kubernetes``), and the
    platform service listens where user pods reach it (``kubernetes.platform_service``)."""
    c.JupyterHub.spawner_class = "mlfactory-kubernetes"
    bind = platform.kubernetes.platform_service.bind if platform.kubernetes else ""
    for service in c.JupyterHub.get("services", []):
        if service.get("name") == SERVICE_NAME and bind:
            service["environment"] = {**service["environment"], "MLFACTORY_SERVICE_BIND": bind}


def running_on_kubernetes(env: Mapping[str, str] = os.environ) -> bool:
    return bool(env.get("KUBERNETES_SERVICE_HOST"))
