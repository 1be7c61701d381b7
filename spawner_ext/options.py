"""The user's choice of resources, for ``MLFactoryLocalSpawner``: the picker form, what the
hub saves of a choice, and resolving it once into a ``ResourceRequest``.

What a user asked for is resolved once, before anything starts, by the pure resolver in
``profiles``; everything after that (budget check, limits, GPUs, the server's environment)
uses only the resolved ``resource_request``, never the raw ``user_options``.

A mixin for both backends: it reads the spawner's ``platform_config_file`` and
``nvidia_smi``, admits the resolved request through the ledger's ``_admit``
(``ledger.LedgerMixin``) and reports progress through ``progress.ProgressMixin``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jupyterhub.handlers.pages import SpawnHandler
from jupyterhub.spawner import SpawnException
from jupyterhub.utils import maybe_future
from mlfactory.hub.platform_config import (
    ConfigError,
    PlatformConfig,
    config_path,
    load_platform_config,
)
from tornado import web
from traitlets import HasTraits, Unicode, default

from .form import Enforcement, budget_text, picker_for_user
from .host import LocalHost
from .image_tags import TagsView
from .picker import form_to_options, render_picker
from .profiles import (
    HostCapabilities,
    RequestError,
    ResourceRequest,
    UserAccess,
    resolve_request,
    user_access,
)
from .server_env import platform_env
from .startup import spawn_error

_CONFIG_CACHE: dict[str, tuple[float, PlatformConfig]] = {}


def cached_platform_config(path: str) -> PlatformConfig:
    """The platform config, parsed again only when the file changes."""
    resolved = str(Path(path).resolve())
    mtime = os.stat(resolved).st_mtime
    cached = _CONFIG_CACHE.get(resolved)
    if cached is None or cached[0] != mtime:
        cached = _CONFIG_CACHE[resolved] = (mtime, load_platform_config(resolved))
    return cached[1]


def request_error(err: RequestError) -> SpawnException:
    return spawn_error(
        f"Invalid choice for {err.field}: {err.message}", reason="user-options", status_code=400
    )


class UserOptionsMixin(HasTraits):
    """Choosing a server's resources; mixed into both mlfactory spawners (their traits
    below are configured under the spawner's own name, e.g. ``c.MLFactoryLocalSpawner``)."""

    platform_config_file = Unicode(
        config=True,
        help="""The platform config (profiles, images, groups, projects, prices) this spawner
        offers and enforces. Re-read when the file changes.

        Default: ``$MLFACTORY_CONFIG``, else the example shipped with mlfactory.
        Example: ``c.MLFactoryLocalSpawner.platform_config_file = "/etc/mlfactory/mlfactory.yaml"``
        """,
    )

    @default("platform_config_file")
    def _default_platform_config_file(self) -> str:
        return str(config_path())

    nvidia_smi = Unicode(
        "nvidia-smi",
        config=True,
        help="""The command that lists this host's GPUs (queried once per hub process). A
        host without it offers no GPUs and GPU profiles are shown as unavailable.""",
    )

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # Options are resolved and applied in run_pre_spawn_hook, after group overrides.
        return lambda spawner, user_options: None

    @default("options_form")
    def _default_options_form(self):
        return UserOptionsMixin._render_options_form

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resource_request: ResourceRequest | None = None
        # The choice saved before the current spawn request (JupyterHub overwrites the
        # saved one with a request's options before the spawn begins): put back when the
        # request is refused, so that a later spawn without options does not repeat it.
        self._saved_options: dict[str, Any] = dict(self.user_options or {})

    @property
    def platform(self) -> PlatformConfig:
        return cached_platform_config(self.platform_config_file)

    def _access(self) -> UserAccess:
        groups = [g.name for g in getattr(self.user, "groups", [])]
        return user_access(self.platform, groups, bool(getattr(self.user, "admin", False)))

    def _enforcement(self, host: LocalHost) -> Enforcement:
        """What this backend enforces of a choice (the picker calls the rest advisory)."""
        return host.enforcement()

    def _capabilities(self, host: LocalHost) -> HostCapabilities:
        """What this backend can hand out: this host's GPUs (the Kubernetes backend: the
        cluster's declared GPU types)."""
        return host.capabilities()

    async def _image_tags(self) -> TagsView | None:
        """The registry's tags of the catalog's images; None where images have no tags (the
        local backend runs the hub's own environment)."""
        return None

    async def _render_options_form(self) -> str:
        host = await LocalHost.get(self.nvidia_smi)
        tags = await self._image_tags()
        previous_options = dict(self.orm_spawner.user_options or {}) if self.orm_spawner else {}
        text = "No budget set"
        standing = getattr(self.budget_check, "standing", None)
        if standing is not None:
            me = await standing(self.user.name, sorted(g.name for g in self.user.groups))
            text = budget_text(me["budgets"], me["currency"]) if me else "Budget unavailable"
        view = picker_for_user(
            self.platform,
            self._access(),
            self._capabilities(host),
            previous_options,
            self._enforcement(host),
            budget_text=text,
            tags=tags.tags if tags else None,
            tags_note=tags.problem if tags else None,
        )
        return render_picker(view)

    async def run_pre_spawn_hook(self):
        # Resolve (and refuse) before anything starts: the REST API answers 400 with the
        # field at fault, and nothing is started or billed.
        self._restart_progress()
        self._emit(5, "Checking resources")
        try:
            request = self.resource_request = await self._resolve()
            await self._admit(request)
        except SpawnException:
            # A refused request must not become the saved choice.
            self._forget_refused_options()
            raise
        self._remember_options()
        return await maybe_future(super().run_pre_spawn_hook())

    def _resource_env(self) -> dict[str, str]:
        """What the server learns of its resolved request and of the platform config (the
        limits in the variables Zero to JupyterHub's images read)."""
        request = self.resource_request
        if request is None:
            return {}
        return {
            "MLFACTORY_PROFILE": json.dumps(request.summary()),
            "CPU_LIMIT": str(request.cpu_limit),
            "CPU_GUARANTEE": str(request.cpu_guarantee),
            "MEM_LIMIT": str(request.mem_limit),
            "MEM_GUARANTEE": str(request.mem_guarantee),
            # the config was read to resolve the request, so it is usable here
            **platform_env(self.platform, self._access().groups),
        }

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        return form_to_options(formdata)

    def _options_are_remembered(self) -> bool:
        """True when the hub re-used the saved options: this request carried none.

        The REST API's body is read as JupyterHub reads it (``{}``, a body with only a
        ``display_name`` or with ``"user_options": null`` carry none); the spawn page's
        form and its ``?opt-…`` query arguments are always explicit.
        """
        handler = getattr(self, "handler", None)
        if handler is None:
            return True
        read_server_body = getattr(handler, "get_server_json_body", None)
        if read_server_body is not None:
            try:
                return read_server_body()["user_options"] is None
            except web.HTTPError:  # the hub read the same body before spawning
                return False
        if isinstance(handler, SpawnHandler):
            request = handler.request
            return request.method != "POST" and not (
                set(request.query_arguments) - {"next", "display_name"}
            )
        return True

    def _remember_options(self) -> None:
        """This request's choice is accepted: it is the one to put back after a refusal."""
        self._saved_options = dict(self.user_options or {})

    def _forget_refused_options(self) -> None:
        """Put back the choice saved before this refused request (the hub commits it when it
        cleans up the failed spawn)."""
        if self._options_are_remembered():
            return  # nothing of this request was saved
        saved = dict(self._saved_options)
        self.user_options = saved
        if self.orm_spawner is not None:
            self.orm_spawner.user_options = saved

    async def _resolve(self) -> ResourceRequest:
        try:
            config = self.platform
        except (ConfigError, OSError) as e:
            self.log.error("Platform config unusable: %s", e)
            raise spawn_error(
                "The platform configuration cannot be read; ask an admin to check it.",
                reason="config",
                status_code=500,
            ) from None
        host = await LocalHost.get(self.nvidia_smi)
        access, caps = self._access(), self._capabilities(host)
        view = await self._image_tags()
        tags = view.tags if view else None
        try:
            return resolve_request(config, access, self.user_options or {}, caps, tags=tags)
        except RequestError as e:
            if not self._options_are_remembered():
                raise request_error(e) from None
            # A saved choice that today's config no longer allows: start the default.
            self.log.warning("Saved options for %s no longer valid (%s)", self._log_name, e)
            self._emit(
                8, f"Your last choice is no longer available ({e.message}); using the default"
            )
            try:
                return resolve_request(config, access, {}, caps, tags=tags)
            except RequestError as e2:
                raise request_error(e2) from None

    def clear_state(self) -> None:
        super().clear_state()
        self.resource_request = None
