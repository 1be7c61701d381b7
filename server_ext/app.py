"""The ExtensionApp that plugs mlfactory into each user's jupyter server.

It reads what the spawner handed over (profile, owner), puts it in the tornado
settings for the handlers, runs each feature's ``setup(app)`` (its configurables, its
settings) and registers the routes: every handler module ends with a ``default_handlers``
list, as JupyterHub's ``apihandlers`` do, and this app concatenates them.
"""

from __future__ import annotations

import asyncio
import gc
import getpass
import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from mlfactory.model_api import resolver
from traitlets import Bool, Dict, Float, List, TraitError, Unicode, default, validate

from . import (
    activity,
    budget,
    collaboration,
    component_publish,
    components,
    contents,
    data,
    handlers,
    identity,
    kernel_messages,
    models,
    shares,
    workspace_shares,
)
from .activity import NVIDIA_SMI, ActivityReporter
from .handlers import SETTINGS_KEY
from .history import diffing, extension
from .history import handlers as history_handlers
from .owner import owner_from_env

PROFILE_ENV = "MLFACTORY_PROFILE"

# Labextensions rebuilt against the JupyterLab this bundle ships (labextension/scripts/
# build-nbdime.mjs): nbdime's wheel ships its extension built for JupyterLab 4.5, asking
# for @jupyter/ydoc 3 where Lab 4.6 shares ydoc 4. JupyterLab takes the first extension of
# a name it finds, so this folder goes first in its search path.
ALIGNED_LABEXTENSIONS = Path(sys.prefix, "share", "jupyter", "mlfactory", "labextensions")

# The modules whose default_handlers make up the routes, in the order they are matched.
ROUTE_MODULES = (
    handlers,
    budget,
    activity,
    components,
    component_publish,
    history_handlers,
    shares,
    workspace_shares,
    models,
    data,
)


def _package_version() -> str:
    try:
        return version("mlfactory")
    except PackageNotFoundError:
        return "unknown"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers run with a uid missing from /etc/passwd
        return ""


class MLFactoryServerApp(ExtensionApp):
    """mlfactory's endpoints inside a single-user jupyter server."""

    name = "mlfactory"
    load_other_extensions = True
    activity_reporter: ActivityReporter | None = None
    # Each feature's setup(app) builds its configurables and stores them in the settings.
    feature_setups = (
        components.setup,
        component_publish.setup,
        extension.setup,
        workspace_shares.setup,
        identity.setup,
    )

    profile = Dict(
        allow_none=True,
        help="""The resource profile this server was started with (a JSON object).

        Default: parsed from the MLFACTORY_PROFILE environment variable, which the
        mlfactory spawner sets. Unset, empty or not a JSON object gives None (with a
        warning for bad JSON); the panels then show no profile.
        Example: c.MLFactoryServerApp.profile = {"name": "cpu-small", "cpu": 2, "mem_gb": 8}
        """,
    ).tag(config=True)

    @default("profile")
    def _default_profile(self) -> dict[str, Any] | None:
        raw = os.environ.get(PROFILE_ENV, "").strip()
        if not raw:
            return None
        try:
            parsed = json.loads(raw)
        except ValueError as e:
            self.log.warning("Ignoring %s: not valid JSON (%s).", PROFILE_ENV, e)
            return None
        if not isinstance(parsed, dict):
            self.log.warning(
                "Ignoring %s: expected a JSON object, got %s.", PROFILE_ENV, type(parsed).__name__
            )
            return None
        return parsed

    owner = Unicode(
        allow_none=True,
        help="""Hub username of the server's owner, the only caller allowed owner-only
        actions (publishing, sharing, credentials).

        Default: JUPYTERHUB_USER when JupyterHub started the server ("" if the hub left it
        unset, which nobody matches), else None. None means a standalone server: its token
        or password is the only way in, so every authenticated caller counts as the owner.
        Example: c.MLFactoryServerApp.owner = "alice"
        """,
    ).tag(config=True)

    @default("owner")
    def _default_owner(self) -> str | None:
        return owner_from_env(os.environ)

    report_interval = Float(
        60.0,
        help="""Seconds between this server's activity reports to the platform service, which
        its idle-shutdown policy judges by (kernels and their state, terminals, the last save,
        GPU utilisation). Reports stop being trusted after 300 s, so keep this well below.
        Example: c.MLFactoryServerApp.report_interval = 30
        """,
    ).tag(config=True)

    @validate("report_interval")
    def _check_report_interval(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] <= 0:
            raise TraitError("report_interval must be a positive number of seconds")
        return float(proposal["value"])

    nvidia_smi = List(
        Unicode(),
        default_value=NVIDIA_SMI,
        help="""The command that prints one GPU utilisation percentage per line, run only when
        CUDA_VISIBLE_DEVICES gives this server GPUs; "--id=<those devices>" is appended.
        Example: c.MLFactoryServerApp.nvidia_smi = ["/usr/bin/nvidia-smi",
        "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        """,
    ).tag(config=True)

    realtime = Bool(
        help="""Whether documents are edited in real time through jupyter-collaboration: two
        people on a shared workspace see each other's edits and cursors live. Off sets
        jupyter-server-ydoc's own ``YDocExtension.disable_rtc``, and JupyterLab opens
        documents the classic way (one editor per file, saved over REST).

        Default: MLFACTORY_REALTIME, which the spawner sets from the platform config's
        ``sharing.workspaces.realtime`` ("1" or "0"); on when unset.
        Example: c.MLFactoryServerApp.realtime = False
        """,
    ).tag(config=True)

    @default("realtime")
    def _default_realtime(self) -> bool:
        return collaboration.realtime_from_env(os.environ)

    def initialize_settings(self) -> None:
        self.settings[SETTINGS_KEY] = {
            "version": _package_version(),
            "profile": self.profile,
            "owner": self.owner,
            # shown in /info only; a standalone server has no hub user to name
            "owner_display": self.owner if self.owner is not None else _os_user(),
        }
        self.activity_reporter = ActivityReporter(
            self.serverapp, self.report_interval, self.nvidia_smi
        )
        self.activity_reporter.install_save_hook(self.serverapp.contents_manager)
        # jupytext's extension (loaded before ours, by name) has replaced the manager's class
        contents.harden(self.serverapp.contents_manager)
        kernel_messages.bound_binary_messages()
        for setup in self.feature_setups:
            setup(self)

    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        super()._link_jupyter_server_extension(serverapp)
        # before any client exists: calls to the hub and the service at IP literals skip
        # tornado's resolver thread
        resolver.install()
        components.start_early(self)  # the catalog builds while the extensions load
        # linked before any extension loads: JupyterLab reads its paths when it loads
        prefer_labextensions(serverapp, ALIGNED_LABEXTENSIONS)
        # also before jupyter_server_ydoc loads: it reads these when it builds its handlers
        collaboration.configure(
            serverapp,
            self.realtime,
            collaboration.state_paths(
                jupyter_data_dir(), os.environ.get("JUPYTERHUB_SERVER_NAME", "")
            ),
        )

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        # runs once the event loop does (not under pytest-jupyter, which never starts it)
        # What the server loaded to start (modules, extensions, the catalog) lives as long as
        # it does: frozen, a full collection no longer walks it. Unfrozen, the first full
        # collections after start-up paused the server 110-127 ms each (gc callbacks), once
        # right under the first requests (JupyterLab loading, the components panel); frozen,
        # 6 ms. What is frozen is never collected: at this point a full collection found
        # 20-530 objects to free.
        gc.freeze()
        if self.activity_reporter is not None:
            self.activity_reporter.start()
        settings = serverapp.web_app.settings
        settings[components.SETTINGS_KEY].warm_up()
        component_publish.sync_soon(settings)
        if (keeper := settings.get(identity.SETTINGS_KEY)) is not None:
            keeper.start()  # the server's data identity, rotated while it runs

    async def stop_extension(self) -> None:
        if (keeper := self.settings.get(identity.SETTINGS_KEY)) is not None:
            await keeper.stop()  # revokes the server's identities while its token works
        pending: list[asyncio.Future] = []
        if self.activity_reporter is not None:
            self.activity_reporter.stop()
            pending += self.activity_reporter.background()
        library = self.settings.get(components.SETTINGS_KEY)
        if library is not None:
            library.stop()
            pending += library.background()
        sync = component_publish.pending_sync(self.settings)
        if sync is not None:
            pending.append(sync)
        keeper = self.settings.get(workspace_shares.SETTINGS_KEY)
        if keeper is not None and (watch := keeper.stop()) is not None:
            pending.append(watch)
        await cancel_background(pending, self.log)
        await diffing.WORKERS.close()

    def initialize_handlers(self) -> None:
        # ExtensionApp._prepare_handlers prefixes each pattern with base_url.
        self.handlers.extend(route for module in ROUTE_MODULES for route in module.default_handlers)


def prefer_labextensions(serverapp: Any, folder: Path) -> None:
    """Put ``folder`` first in JupyterLab's extension search path (if it exists), so its
    extensions replace those of the same name elsewhere."""
    if not folder.is_dir():
        return
    for app in serverapp.extension_manager.extension_apps.get("jupyterlab", ()):
        paths = [p for p in app.extra_labextensions_path if p != str(folder)]
        app.extra_labextensions_path = [str(folder), *paths]


async def cancel_background(tasks: list[asyncio.Future], log: Any, wait_s: float = 10) -> None:
    """Cancel the extension's background work and wait for it, boundedly: a server that
    stops must not hang on a git fetch or a request to the platform service."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, stuck = await asyncio.wait(tasks, timeout=wait_s)
    for task in stuck:  # says where it hangs, rather than hanging the shutdown
        log.warning("Background task still running at shutdown: %r", task)
