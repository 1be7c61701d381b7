"""The local-process backend: each user's JupyterLab as a process on the hub's machine.

Two levers make it faster than JupyterHub's LocalProcessSpawner: ``start()``
returns only once the server accepts connections (so the hub's randomised
readiness backoff succeeds on its first poll), and a server that dies during
start-up fails the spawn at once with the cause from its log, instead of the
hub waiting out ``http_timeout`` and answering with a bare error; one that never
answers fails just before ``start_timeout`` with the last lines of its log.

What a user asked for is resolved once, before anything starts
(``run_pre_spawn_hook``), by the pure resolver in ``profiles``; everything after
that (budget check, limits, GPUs, the server's environment) uses only the resolved
``ResourceRequest``, never the raw ``user_options``.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jupyterhub.handlers.pages import SpawnHandler
from jupyterhub.spawner import LocalProcessSpawner, SpawnException, set_user_setuid
from jupyterhub.utils import maybe_future, random_port
from mlfactory.hub.platform_config import (
    ConfigError,
    PlatformConfig,
    config_path,
    journal_dir,
    load_platform_config,
    server_logs_dir,
    workspaces_dir,
)
from tornado import web
from traitlets import Any as AnyTrait
from traitlets import Bool, Enum, Float, Unicode, default

from .cgroups import make_preexec
from .form import budget_text, picker_for_user
from .gpus import NoGpuAvailable, cuda_env
from .host import LocalHost
from .journal import Journal, new_ledger, record_of
from .limits import plan_limits
from .os_accounts import (
    ensure_os_account,
    home_problem,
    interpreter_problem,
    os_account_name,
    owned_dir,
    private_dirs,
    traversable_dirs,
)
from .picker import form_to_options, render_picker
from .profiles import (
    RequestError,
    ResourceRequest,
    resolve_request,
    user_access,
)
from .server_env import platform_env
from .slugs import safe_slug
from .startup import failure_cause, last_log_lines, timeout_cause, timeout_cause_html


def spawn_error(
    message: str,
    *,
    reason: str,
    log_message: str = "",
    status_code: int = 400,
    html_message: str | None = None,
) -> SpawnException:
    """A SpawnException whose ``message`` is exactly what the user reads.

    JupyterHub's progress stream and error pages show ``exc.jupyterhub_message`` when
    set, and ``str(exc)`` (status, class name and the log message) otherwise; where
    ``html_message`` is given (already escaped) they render it instead.
    """
    exc = SpawnException(message, reason=reason, log_message=log_message, status_code=status_code)
    exc.jupyterhub_message = message
    if html_message is not None:
        exc.jupyterhub_html_message = html_message
    return exc


_CONFIG_CACHE: dict[str, tuple[float, PlatformConfig]] = {}
# How long before JupyterHub's start_timeout a start gives up by itself (a tenth of the
# timeout when that is less): long enough for the event loop to run it first.
_TIMEOUT_MARGIN = 2.0


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


class MLFactoryLocalSpawner(LocalProcessSpawner):
    """Start each user's server as a local process with the resources they picked."""

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

    user_accounts = Enum(
        ["auto", "create", "existing", "none"],
        "auto",
        config=True,
        help="""Which OS account each server runs as.

        - ``create``: an account ``mlf-<user>`` made on first spawn (needs root), home
          folder mode 0700 under ``workspace_root``: users cannot read each other's files
          or the hub's state.
        - ``existing``: the OS account with the hub user's name (JupyterHub's
          LocalProcessSpawner behaviour; needs root).
        - ``none``: the hub's own account, one workspace folder per user. No isolation:
          every user can read every workspace and the hub's state. For a single trusted
          team.
        - ``auto`` (default): ``create`` when the hub runs as root, else ``none``.

        Example: ``c.MLFactoryLocalSpawner.user_accounts = "create"``
        """,
    )

    workspace_root = Unicode(
        config=True,
        help="""Folder holding one home folder per user, named by
        ``mlfactory.spawner.slugs.safe_slug`` of the user name (mode 0700, owned by the
        user's OS account when accounts are created). Named servers open in a sub-folder of
        their user's home.

        Default: ``$MLFACTORY_DATA/workspaces``.
        Example: ``c.MLFactoryLocalSpawner.workspace_root = "/srv/mlfactory/workspaces"``
        """,
    )

    @default("workspace_root")
    def _default_workspace_root(self) -> str:
        return str(workspaces_dir())

    log_root = Unicode(
        config=True,
        help="""Folder for each server's output log (``<server>.log``, appended, mode 0600).
        The cause of a failed start is read from it and shown to the user.

        Default: ``$MLFACTORY_DATA/logs/servers``.
        """,
    )

    @default("log_root")
    def _default_log_root(self) -> str:
        return str(server_logs_dir())

    allow_root = Bool(
        True,
        config=True,
        help="""With ``user_accounts = "none"`` and a hub running as root, servers run as
        root too; True passes ``--allow-root`` to them, False refuses such spawns with a
        clear message.

        Example: ``c.MLFactoryLocalSpawner.allow_root = False``
        """,
    )

    ready_poll_interval = Float(
        0.02,
        config=True,
        help="""Seconds between checks that the new server accepts connections. Checks are
        a local TCP connect, so a short interval costs little and shortens every spawn.""",
    )

    nvidia_smi = Unicode(
        "nvidia-smi",
        config=True,
        help="""The command that lists this host's GPUs (queried once per hub process). A
        host without it offers no GPUs and GPU profiles are shown as unavailable.""",
    )

    budget_check = AnyTrait(
        None,
        config=True,
        allow_none=True,
        help="""Optional ``async def check(spawner, request) -> str | None``: return a message
        to refuse the spawn (shown to the user), or None to allow it. ``request`` is the
        resolved ``mlfactory.spawner.profiles.ResourceRequest``. Called before anything
        starts.""",
    )

    journal_root = Unicode(
        config=True,
        help="""Folder where each running server is recorded for the platform service's
        ledger (one file per session, mode 0600): it lets the service charge a server the hub
        lost track of and close a session at its real stop time.

        Default: ``$MLFACTORY_DATA/runtime/servers``.
        """,
    )

    @default("journal_root")
    def _default_journal_root(self) -> str:
        return str(journal_dir())

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        # The hub's own interpreter: the server gets the same installed mlfactory.
        return [sys.executable, "-m", "mlfactory.spawner.singleuser"]

    @default("default_url")
    def _default_url(self) -> str:
        return "/lab"

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # Options are resolved and applied in run_pre_spawn_hook, after group overrides.
        return lambda spawner, user_options: None

    @default("options_form")
    def _default_options_form(self):
        return MLFactoryLocalSpawner._render_options_form

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._events: list[dict] = []
        self._events_changed = asyncio.Event()
        self._log_offset = 0
        self.resource_request: ResourceRequest | None = None
        self._held: dict[str, Any] = {}  # what this server holds: gpus, cgroup, pinned cores
        self._restore_pending = False
        self.ledger: dict[str, Any] | None = None  # this session as the ledger knows it
        # The choice saved before the current spawn request (JupyterHub overwrites the
        # saved one with a request's options before the spawn begins): put back when the
        # request is refused, so that a later spawn without options does not repeat it.
        self._saved_options: dict[str, Any] = dict(self.user_options or {})

    # -- where things live -------------------------------------------------------------

    @property
    def server_slug(self) -> str:
        # "/" never survives safe_slug, so a named server always gets a hashed slug that
        # no user name (or other user's server) can produce.
        return safe_slug(self.user.name if not self.name else f"{self.user.name}/{self.name}")

    @property
    def workspace(self) -> Path:
        """The user's home folder (with existing OS accounts: that account's home)."""
        if self.accounts_mode == "existing":
            return Path(pwd.getpwnam(self.user.name).pw_dir)
        return Path(self.workspace_root) / safe_slug(self.user.name)

    @property
    def server_root(self) -> Path:
        return self.workspace if not self.name else self.workspace / safe_slug(self.name)

    @property
    def log_path(self) -> Path:
        return Path(self.log_root) / f"{self.server_slug}.log"

    @property
    def accounts_mode(self) -> str:
        if self.user_accounts != "auto":
            return self.user_accounts
        return "create" if os.geteuid() == 0 else "none"

    def _runs_as_root(self) -> bool:
        return self.accounts_mode == "none" and os.geteuid() == 0

    @property
    def platform(self) -> PlatformConfig:
        return cached_platform_config(self.platform_config_file)

    # -- choosing resources ------------------------------------------------------------

    def _access(self):
        groups = [g.name for g in getattr(self.user, "groups", [])]
        return user_access(self.platform, groups, bool(getattr(self.user, "admin", False)))

    async def _render_options_form(self) -> str:
        host = await LocalHost.get(self.nvidia_smi)
        previous_options = dict(self.orm_spawner.user_options or {}) if self.orm_spawner else {}
        text = "No budget set"
        standing = getattr(self.budget_check, "standing", None)
        if standing is not None:
            me = await standing(self.user.name, sorted(g.name for g in self.user.groups))
            text = budget_text(me["budgets"], me["currency"]) if me else "Budget unavailable"
        view = picker_for_user(
            self.platform,
            self._access(),
            host.capabilities(),
            previous_options,
            host.enforcement(),
            budget_text=text,
        )
        return render_picker(view)

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
        access, caps = self._access(), host.capabilities()
        try:
            return resolve_request(config, access, self.user_options or {}, caps)
        except RequestError as e:
            if not self._options_are_remembered():
                raise request_error(e) from None
            # A saved choice that today's config no longer allows: start the default.
            self.log.warning("Saved options for %s no longer valid (%s)", self._log_name, e)
            self._emit(
                8, f"Your last choice is no longer available ({e.message}); using the default"
            )
            try:
                return resolve_request(config, access, {}, caps)
            except RequestError as e2:
                raise request_error(e2) from None

    async def run_pre_spawn_hook(self):
        # Resolve (and refuse) before anything starts: the REST API answers 400 with the
        # field at fault, and nothing is started or billed.
        self._events = []
        self._events_changed.set()
        self._emit(5, "Checking resources")
        try:
            request = self.resource_request = await self._resolve()
            groups = [g.name for g in self.user.groups]
            self.ledger = new_ledger(self.user.name, self.name, groups, request)
            self._emit(15, "Checking budget")
            if self.budget_check is not None:
                refusal = await maybe_future(self.budget_check(self, request))
                if refusal:
                    self.ledger = None
                    raise spawn_error(str(refusal), reason="budget", status_code=403)
        except SpawnException:
            # A refused request must not become the saved choice.
            self._forget_refused_options()
            raise
        self._saved_options = dict(self.user_options or {})
        return await maybe_future(super().run_pre_spawn_hook())

    # -- process set-up ----------------------------------------------------------------

    def user_env(self, env: dict) -> dict:
        if self.accounts_mode == "existing":
            return super().user_env(env)
        env["USER"] = self.user.name
        env["HOME"] = str(self.workspace)
        env["SHELL"] = "/bin/bash"
        return env

    def get_env(self) -> dict:
        env = super().get_env()
        request = self.resource_request
        if request is not None:
            env["MLFACTORY_PROFILE"] = json.dumps(request.summary())
            env["CPU_LIMIT"] = str(request.cpu_limit)
            env["CPU_GUARANTEE"] = str(request.cpu_guarantee)
            env["MEM_LIMIT"] = str(request.mem_limit)
            env["MEM_GUARANTEE"] = str(request.mem_guarantee)
            # the config was read to resolve the request, so it is usable here
            env.update(platform_env(self.platform, self._access().groups))
        env.update(cuda_env(self._held.get("gpus", ())))
        return env

    def get_args(self) -> list[str]:
        args = list(super().get_args())  # a copy: the base may hand back self.args itself
        if not any(a.startswith(("--ServerApp.root_dir", "--notebook-dir")) for a in args):
            args.append(f"--ServerApp.root_dir={self.server_root}")  # unless an admin chose
        if self._runs_as_root() and self.allow_root:
            args.append("--allow-root")
        return args

    async def _prepare_account(self) -> pwd.struct_passwd | None:
        """The OS account the server runs as (None: the hub's own), home folder ready."""
        mode = self.accounts_mode
        if mode == "none":
            if self._runs_as_root() and not self.allow_root:
                raise spawn_error(
                    "The hub runs as root and servers would run as root too, which this hub "
                    "refuses (MLFactoryLocalSpawner.allow_root = False). Ask an admin to set "
                    "user_accounts = 'create'.",
                    reason="root",
                )
            await asyncio.to_thread(private_dirs, self.workspace)
            await asyncio.to_thread(private_dirs, self.server_root)
            return None
        if os.geteuid() != 0:
            raise spawn_error(
                f"Servers run under per-user OS accounts (user_accounts = '{mode}'), which "
                "needs the hub to run as root. Ask an admin.",
                reason="accounts",
                status_code=500,
            )
        try:
            if mode == "existing":
                account = await asyncio.to_thread(pwd.getpwnam, self.user.name)
                if account.pw_uid < 1000:  # Debian's UID_MIN: never a system account
                    raise OSError(f"{self.user.name} is a system account")
            else:
                root = Path(self.workspace_root)
                await asyncio.to_thread(traversable_dirs, root)
                account = await ensure_os_account(
                    os_account_name(self.user.name),
                    self.workspace,
                    comment=f"mlfactory user {self.user.name}",
                )
        except (KeyError, OSError) as e:
            self.log.error("No OS account for %s: %s", self._log_name, e)
            raise spawn_error(
                f"Your OS account could not be prepared ({e}). Ask an admin.",
                reason="accounts",
                status_code=500,
            ) from None
        problem = await asyncio.to_thread(self._account_problem, account)
        if problem:
            raise spawn_error(problem, reason="accounts", status_code=500)
        try:
            if mode == "create":
                # The account may predate this workspace root (or have lost its home).
                await asyncio.to_thread(owned_dir, self.workspace, account)
            if self.name:
                await asyncio.to_thread(owned_dir, self.server_root, account)
        except OSError as e:
            self.log.error("Workspace of %s not usable: %s", self._log_name, e)
            raise spawn_error(
                f"Your workspace folder could not be prepared ({e}). Ask an admin.",
                reason="accounts",
                status_code=500,
            ) from None
        return account

    def _account_problem(self, account: pwd.struct_passwd) -> str | None:
        return interpreter_problem(self.cmd[0], account.pw_uid, account.pw_gid) or home_problem(
            self.workspace, account
        )

    # -- lifecycle ---------------------------------------------------------------------

    def _emit(self, progress: int, message: str) -> None:
        self._events.append({"progress": progress, "message": message})
        self._events_changed.set()

    async def progress(self) -> AsyncIterator[dict]:
        events, sent = self._events, 0
        while True:
            if self._events is not events:  # a new spawn began: follow its events
                events, sent = self._events, 0
            if sent < len(events):
                yield events[sent]
                sent += 1
                continue  # re-check: the list may have been replaced while we yielded
            # No await between the checks above and clear(): nothing can slip in between.
            self._events_changed.clear()
            await self._events_changed.wait()

    async def start(self) -> tuple[str, int]:
        # JupyterHub cancels a start that outlasts start_timeout and tells the user only
        # "Spawn failed: " (its TimeoutError has no text). Give up a little earlier, while
        # the server's log can still say why.
        limit = self.start_timeout
        timeout = asyncio.timeout(max(0.0, limit - min(_TIMEOUT_MARGIN, limit / 10)))
        proc_before = self.proc
        try:
            async with timeout:
                return await self._start()
        except TimeoutError:
            if not timeout.expired():
                raise
            # only this start's output: none if it never got as far as the process
            launched = self.proc is not proc_before
            tail = await asyncio.to_thread(self._log_tail) if launched else ""
            self.log.warning(
                "%s did not accept connections within %s s (log: %s)",
                self._log_name,
                limit,
                self.log_path,
            )
            lines = last_log_lines(tail)
            raise spawn_error(
                timeout_cause(limit, lines),
                reason="timeout",
                log_message=f"Server {self.server_slug} did not start within {limit} s "
                f"(log: {self.log_path})",
                status_code=500,
                html_message=timeout_cause_html(limit, lines),
            ) from None

    async def _start(self) -> tuple[str, int]:
        request = self.resource_request or await self._resolve()
        host = await LocalHost.get(self.nvidia_smi)
        self._emit(25, "Preparing your workspace")
        account = await self._prepare_account()
        await asyncio.to_thread(private_dirs, self.log_path.parent)
        if self.port == 0:
            self.port = random_port()
        try:
            procs_files, cpus = await self._hold_resources(host, request)
            then = set_user_setuid(account.pw_name, chdir=False) if account else None
            preexec = make_preexec(procs_files, cpus, then)
            self._emit(50, f"Starting JupyterLab ({request.display_name})")
            try:
                self._popen(preexec)
            except OSError as e:
                self.log.error("Cannot start %s: %s", self._log_name, e)
                raise spawn_error(
                    f"Your server could not be started ({e.strerror}). Ask an admin.",
                    reason="popen",
                    status_code=500,
                ) from None
            await asyncio.to_thread(self._journal_started)
            self._emit(70, "Waiting for JupyterLab to accept connections")
            await self._wait_until_listening(self.ip or "127.0.0.1", self.port)
            await asyncio.to_thread(self._journal_ready)
        except BaseException:
            await self._release()
            await self._ledger_ended("failed to start")
            raise
        self._emit(100, "Ready")
        return self.ip or "127.0.0.1", self.port

    async def _hold_resources(self, host: LocalHost, request: ResourceRequest):
        """GPUs, pinned cores and cgroups for this server; recorded for release."""
        key = self._held["key"] = self.server_slug  # kept: a rename must not orphan these
        if request.gpu:
            try:
                self._held["gpus"] = host.allocator.allocate(key, request.gpu, request.gpu_type)
            except NoGpuAvailable as e:
                raise spawn_error(str(e), reason="gpu", status_code=503) from None
        plan = plan_limits(
            cpu_limit=request.cpu_limit,
            cpu_guarantee=request.cpu_guarantee,
            mem_limit=request.mem_limit,
            mem_guarantee=request.mem_guarantee,
            host_cpus=host.cpus,
            cpu_load=host.cpu_load,
        )
        host.pin(key, plan)
        self._held["pinned"] = True
        procs_files = []
        if host.cgroups is not None:
            procs_files = await host.cgroups.create(key, plan)
            self._held["cgroup"] = True
        return procs_files, plan.cpus

    async def _release(self) -> None:
        """Give back what this server held (idempotent). The cgroup goes first: its
        removal kills what is left of the server, and only then are its GPUs free."""
        if not self._held:
            return
        host = await LocalHost.get(self.nvidia_smi)
        key = self._held.get("key", self.server_slug)
        if self._held.get("cgroup") and host.cgroups is not None:
            try:
                await host.cgroups.remove(key)
            except OSError as e:  # keep holding: the next poll or stop retries
                self.log.error("Cannot remove cgroup of %s: %s", self._log_name, e)
                return
        if self._held.get("gpus") is not None:
            host.allocator.release(key)
        if self._held.get("pinned"):
            host.unpin(key)
        self._held.clear()

    def _popen(self, preexec) -> None:
        cmd = [*self.cmd, *self.get_args()]
        env = self.get_env()
        self.log.info("Spawning %s (log: %s)", shlex.join(cmd), self.log_path)
        # The log holds the user's paths and tracebacks: owner-only, like the workspace.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as log:
            self._log_offset = log.tell()
            popen_kwargs = {
                "cwd": str(self.server_root),
                "stdin": subprocess.DEVNULL,
                "stdout": log,
                "stderr": subprocess.STDOUT,
                "preexec_fn": preexec,
                "start_new_session": True,  # the hub's signals are not the server's
                **self.popen_kwargs,
                "env": env,  # as in LocalProcessSpawner: config may not override the env
            }
            self.proc = subprocess.Popen(cmd, **popen_kwargs)
        self.pid = self.proc.pid

    # -- the ledger ----------------------------------------------------------------------

    def _journal_started(self) -> None:
        if self.ledger is None:
            return
        self.ledger["ready"] = False  # until it accepts connections; if it never does: free
        Journal(self.journal_root).write(record_of(self.ledger, self.pid))

    def _journal_ready(self) -> None:
        if self.ledger is None:
            return
        self.ledger["ready"] = True
        Journal(self.journal_root).mark_ready(self.ledger["key"])

    async def _ledger_ended(self, reason: str, ledger: dict[str, Any] | None = None) -> None:
        """Record the end in the journal and tell the service at once (once per session), so
        the server stops counting now; a server that never accepted connections costs
        nothing. ``ledger``: the session, when the caller took it out of ``self.ledger``."""
        if ledger is None:
            ledger, self.ledger = self.ledger, None
        elif ledger is self.ledger:
            self.ledger = None
        if ledger is None or ledger.get("ended"):
            return
        ledger["ended"] = True
        now = time.time()
        try:
            await asyncio.to_thread(Journal(self.journal_root).mark_stopped, ledger["key"], now)
        except OSError as e:
            self.log.error("Cannot record the end of %s: %s", self._log_name, e)
        ended = getattr(self.budget_check, "ended", None)
        if ended is not None:
            await ended(ledger["key"], now, reason, never_ready=ledger.get("ready") is False)

    async def poll(self) -> int | None:
        # JupyterHub's poll clears the state of a process that is gone, and the session with
        # it (clear_state): keep hold of it to report the end.
        ledger = self.ledger
        status = await super().poll()
        if status is not None:
            await self._ledger_ended("exited", ledger)
            await self._release()
        elif self._restore_pending:
            # After a hub restart: the server still holds its GPUs; tell the allocator.
            host = await LocalHost.get(self.nvidia_smi)
            key = self._held.get("key", self.server_slug)
            dropped = host.allocator.restore(key, self._held.get("gpus", ()))
            if dropped:
                self.log.warning("GPUs %s of %s are gone from this host", dropped, self._log_name)
            self._restore_pending = False
        return status

    async def stop(self, now: bool = False) -> None:
        self._events = []
        # Taken out first: the polls inside JupyterHub's stop would report it as "exited".
        ledger, self.ledger = self.ledger, None
        try:
            await super().stop(now=now)
        except BaseException:
            self.ledger = self.ledger or ledger  # still running, as far as we know
            raise
        await self._ledger_ended("stopped", ledger)
        await self._release()

    def get_state(self) -> dict:
        state = super().get_state()
        if self._held:
            state["mlfactory"] = {
                "key": self._held.get("key"),
                "gpus": list(self._held.get("gpus", ())),
                **{k: True for k in ("pinned", "cgroup") if self._held.get(k)},
            }
        if self.ledger is not None:
            # The platform service reads the price from here (the hub's API, admin:server_state)
            state.setdefault("mlfactory", {})["ledger"] = self.ledger
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        held = dict(state.get("mlfactory") or {})
        self.ledger = held.pop("ledger", None) or self.ledger
        self._held = {k: v for k, v in held.items() if v}
        self._held.pop("pinned", None)  # core pins are load bookkeeping; not restored
        if "gpus" in self._held:
            self._held["gpus"] = tuple(self._held["gpus"])
            self._restore_pending = True

    def clear_state(self) -> None:
        super().clear_state()
        self.resource_request = None
        self.ledger = None

    async def _wait_until_listening(self, ip: str, port: int) -> None:
        """Return once ``ip:port`` accepts a TCP connection; fail fast if the process exits."""
        while True:
            returncode = self.proc.poll()
            if returncode is not None:
                cause = failure_cause(self._log_tail())
                raise spawn_error(
                    f"Your server stopped during start-up (exit code {returncode}): {cause}",
                    reason="server-exited",
                    log_message=f"Server {self.server_slug} exited with {returncode}: {cause} "
                    f"(log: {self.log_path})",
                    status_code=500,
                )
            try:
                _, writer = await asyncio.open_connection(ip, port)
            except OSError:
                await asyncio.sleep(self.ready_poll_interval)
                continue
            writer.close()
            await writer.wait_closed()
            return

    def _log_tail(self, max_bytes: int = 16384) -> str:
        """What this start wrote to the log (its last ``max_bytes``)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(self._log_offset, f.tell() - max_bytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""
