"""The platform service process: ``python -m mlfactory.service``.

JupyterHub starts it as a managed service and hands it, in the environment, its API token,
the hub's API URL, its URL prefix and bind address (``JUPYTERHUB_*``). mlfactory adds the
shared secret the spawner's budget gate uses (``MLFACTORY_SERVICE_SECRET``), the platform
config (``MLFACTORY_CONFIG``), the data dir (``MLFACTORY_DATA``) and, with the container
backend, ``MLFACTORY_SERVICE_BIND`` (the address to listen on, e.g. ``0.0.0.0``: servers in
containers reach the service on the engine's bridge gateway, not on the hub's loopback). On
Kubernetes the same variables come from the Helm chart's service definition.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth
from mlfactory.hub.platform_config import (
    PlatformConfig,
    config_path,
    data_dir,
    journal_dir,
    load_platform_config,
    platform_db_url,
)
from mlfactory.model_api import resolver
from mlfactory.model_api.lifeline import exit_with_hub
from mlfactory.spawner.container_labels import INSTANCE, instance_id
from mlfactory.spawner.journal import Journal
from tornado import web
from tornado.ioloop import PeriodicCallback
from tornado.log import access_log
from traitlets import Callable as CallableTrait
from traitlets import Unicode, default
from traitlets.config import Application

from . import (
    budget_api,
    components,
    culling_api,
    dashboard,
    data_api,
    gate_api,
    home_api,
    identity_api,
    models_api,
    models_db,
    service_api,
    share_api,
    workspace_share_api,
)
from .accounting import Accountant
from .base import scrub_uri
from .culler import Culler
from .data_broker import DataBroker, DataStoresInvalid, make_drivers
from .db import make_engine, upgrade
from .engine_view import engine_view
from .hubapi import HubAPI
from .share_store import ShareStore, shares_dir
from .store import Store

HERE = Path(__file__).parent
# How long the service trusts the hub's answer about a token (or the OAuth cookie that holds
# one). The hub applies a role or group change, a deleted user and an expired token on the
# next request; HubAuth's default of 300 s would let all of those work on here for minutes.
AUTH_CACHE_SECONDS = 2
# The modules whose default_handlers make up the routes, in the order they are matched.
ROUTE_MODULES = (
    dashboard,
    service_api,
    gate_api,
    budget_api,
    culling_api,
    home_api,
    components,
    share_api,
    workspace_share_api,
    models_api,
    data_api,
    identity_api,
)


def make_hub_auth() -> HubOAuth:
    """The service's HubOAuth, configured from the ``JUPYTERHUB_*`` environment.

    It is ``HubOAuth.instance()``: the login redirect stores the OAuth state and PKCE code
    verifier in this object, and JupyterHub's ``HubOAuthCallbackHandler`` reads the
    instance; a second object made the callback fail with "Code verifier required".
    """
    return HubOAuth.instance(cache_max_age=AUTH_CACHE_SECONDS)


def log_request(handler: web.RequestHandler) -> None:
    """The access log, with secrets in URLs (the OAuth callback's code and state, a
    ``?token=``) scrubbed by JupyterHub's rules (``base.scrub_uri``). Unlike
    ``jupyterhub.log.log_request`` it does not ask for ``current_user``, which would identify
    a user synchronously."""
    status = handler.get_status()
    if status < 300 or status == 304:
        level = logging.DEBUG
    elif status < 400:
        level = logging.INFO
    elif status < 500:
        level = logging.WARNING
    else:
        level = logging.ERROR
    request = handler.request
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        scrub_uri(request.uri or ""),
        request.remote_ip,
        1000.0 * request.request_time(),
    )


def log_through(log: logging.Logger) -> None:
    """Send the platform's own loggers (``mlfactory.*``: the gate's verdicts, reconciles,
    alerts) and tornado's (the access log, HubOAuth's messages) through the service's
    handler at INFO, as JupyterHub hooks tornado's up to its own. Left to the root logger,
    which has no handler, their INFO lines were lost and warnings printed bare."""
    for name in ("mlfactory", "tornado"):
        logger = logging.getLogger(name)
        logger.parent = log
        logger.setLevel(logging.INFO)


def routes(prefix: str) -> list[tuple]:
    """Every handler module's ``default_handlers``, under the service's prefix."""
    p = prefix.rstrip("/")
    return [
        (p + pattern, *rest)
        for module in ROUTE_MODULES
        for pattern, *rest in module.default_handlers
    ]


def make_app(
    accountant: Accountant,
    hub_auth: HubOAuth,
    *,
    prefix: str = "/services/mlfactory/",
    secret: str = "",
    cookie_secret: bytes | None = None,
    culler: Culler | None = None,
    **settings,
) -> web.Application:
    """The tornado application (the tests build it in-process around a test accountant)."""
    return web.Application(
        routes(prefix),
        accountant=accountant,
        hub_auth=hub_auth,
        culler=culler,
        service_secret=secret,
        openapi=(HERE / "openapi.yaml").read_text(),
        template_path=str(HERE / "templates"),
        static_path=str(HERE / "static"),
        static_url_prefix=f"{prefix.rstrip('/')}/static/",
        cookie_secret=cookie_secret or secrets.token_bytes(32),
        xsrf_cookies=False,  # HubOAuth checks XSRF itself for cookie-authenticated writes
        service_prefix=prefix,
        **{"log_function": log_request, **settings},
    )


class PlatformService(Application):
    name = "mlfactory-service"
    description = "mlfactory's platform service: ledger, budgets, alerts and the cost dashboard"

    config_file = Unicode(
        help="The platform config; default $MLFACTORY_CONFIG, else the shipped example."
    ).tag(config=True)

    @default("config_file")
    def _default_config_file(self) -> str:
        return str(config_path())

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    clock = CallableTrait(
        time.time,
        help="Where the service reads the time (epoch seconds); tests pass a fake clock.",
    ).tag(config=True)

    def initialize(self, argv=None) -> None:
        super().initialize(argv)
        self.log.setLevel(logging.INFO)
        log_through(self.log)
        self.platform: PlatformConfig = load_platform_config(self.config_file)
        url = self.platform.accounting.database_url or platform_db_url()
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        upgrade(self.engine)
        api_url, token = os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]
        hub = HubAPI(api_url, token)
        self.accountant = Accountant(
            Store(self.engine),
            self.platform,
            hub=hub,
            journal=Journal(journal_dir()),
            clock=self.clock,
            # this hub's containers only: other hubs may share the engine
            engine=engine_view(self.platform, labels={INSTANCE: instance_id(data_dir())}),
        )
        self.culler = Culler(
            self.engine, self.platform, hub=hub, hub_url=api_url, token=token, clock=self.clock
        )
        # data credentials: a bad key or unreadable admin secret stops the start here
        try:
            drivers = make_drivers(self.platform)
        except DataStoresInvalid as e:
            self.log.critical("%s:\n%s", self.config_file, e)
            self.exit(1)
        self.data = (
            DataBroker(self.platform, self.engine, drivers, hub=hub, clock=self.clock)
            if drivers
            else None
        )

    async def serve(self) -> None:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/mlfactory/")
        bind = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
        app = make_app(
            self.accountant,
            make_hub_auth(),
            prefix=prefix,
            secret=os.environ.get("MLFACTORY_SERVICE_SECRET", ""),
            culler=self.culler,
            data_broker=self.data,
        )
        if self.data is not None:
            try:  # a store whose admin credentials do not work stops the start
                await self.data.check_all()
            except DataStoresInvalid as e:
                self.log.critical("%s:\n%s", self.config_file, e)
                raise SystemExit(1) from None
        await self.accountant.start()
        # models registered before predict grants existed get their access.yaml (owner)
        await models_db.start_registry(app)
        host = os.environ.get("MLFACTORY_SERVICE_BIND") or bind.hostname or "127.0.0.1"
        app.listen(bind.port or 80, host, xheaders=True)
        self.log.info("mlfactory platform service listening on %s:%s%s", host, bind.port, prefix)
        await self._tick()
        interval = self.platform.accounting.interval * 1000
        PeriodicCallback(self._tick, interval).start()
        if self.data is not None:  # renew, drop and audit data credentials
            PeriodicCallback(self._data_tick, min(interval, 60_000)).start()
        if self.platform.culling.enabled:
            PeriodicCallback(self.culler.run_pass, self.platform.culling.every * 1000).start()
            PeriodicCallback(self._remove_stale_named, 3600 * 1000).start()
        # snapshots of ended notebook shares go after sharing.retention (the audit stays)
        PeriodicCallback(self._share_retention, 3600 * 1000).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    async def _tick(self) -> None:
        try:
            await self.accountant.tick()
        except Exception:  # the hub may be restarting: log, keep serving, retry next tick
            self.log.exception("Accounting tick failed; retrying at the next interval")

    async def _data_tick(self) -> None:
        try:
            await self.data.tick()
        except Exception:  # a store or the hub may be restarting: the next tick retries
            self.log.exception("Data credentials upkeep failed; retrying at the next interval")

    async def _remove_stale_named(self) -> None:
        try:
            await self.culler.remove_stale_named()
        except Exception as e:  # the hub may be restarting; the next hour retries
            self.log.warning("Removing unused named servers failed: %s", e)

    async def _share_retention(self) -> None:
        store = ShareStore(self.engine, shares_dir(), self.clock)
        try:
            await store.purge_ended(self.platform.sharing.retention.keep_revoked)
        except Exception as e:  # the database may be busy; the next hour retries
            self.log.warning("Deleting the snapshots of ended shares failed: %s", e)

    def start(self) -> None:
        asyncio.run(self.serve())


def main(argv: list[str] | None = None, clock: Callable[[], float] | None = None) -> None:
    exit_with_hub()  # a managed service ends with its hub, however the hub ends
    resolver.install()  # its calls to the hub's API go to an IP literal
    app = PlatformService()
    if clock is not None:
        app.clock = clock
    app.initialize(argv)
    app.start()
