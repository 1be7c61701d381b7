"""The local-process backend: each user's JupyterLab as a process on the hub's machine.

Two levers make it faster than JupyterHub's LocalProcessSpawner: ``start()``
returns only once the server accepts connections (so the hub's randomised
readiness backoff succeeds on its first poll), and a server that dies during
start-up fails the spawn at once with the cause from its log, instead of the
hub waiting out ``http_timeout`` and answering with a bare error; one that never
answers fails just before ``start_timeout`` with the last lines of its log.

This module holds the spawner's configuration and its server process: start, wait until
ready, poll, stop, and what the process holds on this machine (``host.LocalHost``). Its
other jobs are mixins, each in the module named after it: the user's choice of resources
(``options``), the OS account and folders a server runs in (``workspace``) and the
session's place in the platform service's ledger (``ledger``).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from jupyterhub.utils import random_port
from mlfactory.hub.platform_config import (
    server_logs_dir,
    workspaces_dir,
)
from traitlets import Bool, Enum, Float, Unicode, default

from .gpus import NoGpuAvailable, cuda_env
from .host import Holding, LocalHost
from .ledger import LedgerMixin
from .options import UserOptionsMixin
from .os_accounts import private_dirs
from .profiles import ResourceRequest
from .progress import ProgressMixin
from .startup import failure_cause, last_log_lines, spawn_error, timeout_cause, timeout_cause_html
from .workspace import WorkspaceMixin

# How long before JupyterHub's start_timeout a start gives up by itself (a tenth of the
# timeout when that is less): long enough for the event loop to run it first.
_TIMEOUT_MARGIN = 2.0


class MLFactoryLocalSpawner(
    UserOptionsMixin, ProgressMixin, WorkspaceMixin, LedgerMixin, LocalProcessSpawner
):
    """Start each user's server as a local process with the resources they picked."""

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

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        # The hub's own interpreter: the server gets the same installed mlfactory.
        return [sys.executable, "-m", "mlfactory.spawner.singleuser"]

    @default("default_url")
    def _default_url(self) -> str:
        return "/lab"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._log_offset = 0
        self._holding: Holding | None = None  # what this server holds on this machine
        self._restore_pending = False  # held before a hub restart: not yet told to the host

    @property
    def log_path(self) -> Path:
        return Path(self.log_root) / f"{self.server_slug}.log"

    # -- process set-up ----------------------------------------------------------------

    def get_env(self) -> dict:
        env = {**super().get_env(), **self._resource_env()}
        env.update(cuda_env(self._holding.gpus if self._holding is not None else ()))
        return env

    def get_args(self) -> list[str]:
        args = list(super().get_args())  # a copy: the base may hand back self.args itself
        if not any(a.startswith(("--ServerApp.root_dir", "--notebook-dir")) for a in args):
            args.append(f"--ServerApp.root_dir={self.server_root}")  # unless an admin chose
        if self._runs_as_root() and self.allow_root:
            args.append("--allow-root")
        return args

    # -- lifecycle ---------------------------------------------------------------------

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
            holding = await self._hold_resources(host, request)
            then = set_user_setuid(account.pw_name, chdir=False) if account else None
            self._emit(50, f"Starting JupyterLab ({request.display_name})")
            try:
                self._popen(holding.preexec(then))
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

    async def _hold_resources(self, host: LocalHost, request: ResourceRequest) -> Holding:
        """GPUs, pinned cores and cgroups for this server; kept for release."""
        try:
            # keyed by the slug it starts with: a rename must not orphan them
            self._holding = await host.hold(self.server_slug, request)
        except NoGpuAvailable as e:
            raise spawn_error(str(e), reason="gpu", status_code=503) from None
        return self._holding

    async def _host(self) -> LocalHost:
        """This machine; after a hub restart, first told what this server still holds (its
        GPUs and cgroup), so no other server gets them and a release frees them."""
        host = await LocalHost.get(self.nvidia_smi)
        if self._restore_pending and self._holding is not None:
            self._restore_pending = False
            dropped = host.restore(self._holding)
            if dropped:
                self.log.warning("GPUs %s of %s are gone from this host", dropped, self._log_name)
        return host

    async def _release(self) -> None:
        """Give back what this server held (idempotent). When its cgroup cannot be removed
        yet, everything stays held: the next poll or stop retries."""
        if self._holding is None:
            return
        host = await self._host()
        try:
            await host.release(self._holding.key)
        except OSError as e:
            self.log.error("Cannot remove cgroup of %s: %s", self._log_name, e)
            return
        self._holding = None

    def _popen(self, preexec: Callable[[], None]) -> None:
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

    async def poll(self) -> int | None:
        status = await super().poll()
        if status is not None:
            await self._release()
        elif self._restore_pending:
            await self._host()  # after a hub restart: the server still holds its GPUs
        return status

    async def stop(self, now: bool = False) -> None:
        self._restart_progress()
        await super().stop(now=now)
        await self._release()

    def get_state(self) -> dict:
        state = super().get_state()
        if self._holding is not None:
            state.setdefault("mlfactory", {}).update(self._holding.state())
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self._holding = Holding.from_state(state.get("mlfactory") or {}, self.server_slug)
        self._restore_pending = self._holding is not None

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
