"""The local-process backend: each user's JupyterLab as a process on the hub's machine.

Two levers make it faster than JupyterHub's LocalProcessSpawner: ``start()``
returns only once the server accepts connections (so the hub's randomised
readiness backoff succeeds on its first poll), and a server that dies during
start-up fails the spawn at once with the cause from its log, instead of the
hub waiting out ``http_timeout`` and answering with a bare error.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, SpawnException
from jupyterhub.utils import random_port
from mlfactory.hub.platform_config import data_dir
from traitlets import Bool, Float, Unicode, default

from .slugs import safe_slug
from .startup import failure_cause


def spawn_error(message: str, *, reason: str, log_message: str = "", status_code: int = 400):
    """A SpawnException whose ``message`` is exactly what the user reads.

    JupyterHub's progress stream and error pages show ``exc.jupyterhub_message`` when
    set, and ``str(exc)`` (status, class name and the log message) otherwise.
    """
    exc = SpawnException(message, reason=reason, log_message=log_message, status_code=status_code)
    exc.jupyterhub_message = message
    return exc


def _private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700 (mkdir's mode only applies
    to the last level)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)


class MLFactoryLocalSpawner(LocalProcessSpawner):
    """Start each user's server as a local process in a per-user workspace."""

    os_accounts = Bool(
        False,
        config=True,
        help="""Run each server as the OS account of the same name.

        False (the embedded default): servers run as the hub's own OS user, each in
        its own workspace folder under ``workspace_root``; no OS accounts are needed,
        but users are not isolated from each other at the OS level — use this for a
        single team on one machine. True: behave like JupyterHub's
        LocalProcessSpawner (the hub must run as root and every hub user must exist
        as an OS account; the workspace is that account's home directory).

        Example: ``c.MLFactoryLocalSpawner.os_accounts = True``
        """,
    )

    workspace_root = Unicode(
        config=True,
        help="""Folder holding one workspace folder per user (used when ``os_accounts`` is
        False). Each user's folder is named by ``mlfactory.spawner.slugs.safe_slug`` of the
        user name and is created on first spawn with mode 0700.

        Default: ``$MLFACTORY_DATA/workspaces``.
        Example: ``c.MLFactoryLocalSpawner.workspace_root = "/srv/mlfactory/workspaces"``
        """,
    )

    @default("workspace_root")
    def _default_workspace_root(self) -> str:
        return str(data_dir() / "workspaces")

    log_root = Unicode(
        config=True,
        help="""Folder for each server's output log (``<user>[-<server>].log``, appended).
        The last lines of the log are shown to the user when their server fails to start.

        Default: ``$MLFACTORY_DATA/logs/servers``.
        """,
    )

    @default("log_root")
    def _default_log_root(self) -> str:
        return str(data_dir() / "logs" / "servers")

    allow_root = Bool(
        True,
        config=True,
        help="""Allow servers to run as root when the hub itself runs as root and
        ``os_accounts`` is False (passes ``--allow-root`` to the server). Set False to
        refuse such spawns with a clear message instead.

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
        self._events: list[dict] = []
        self._events_changed = asyncio.Event()
        self._log_offset = 0

    # -- where things live -------------------------------------------------------------

    @property
    def server_slug(self) -> str:
        name = self.user.name if not self.name else f"{self.user.name}-{self.name}"
        return safe_slug(name)

    @property
    def workspace(self) -> Path:
        return Path(self.workspace_root) / safe_slug(self.user.name)

    @property
    def log_path(self) -> Path:
        return Path(self.log_root) / f"{self.server_slug}.log"

    def _runs_as_root(self) -> bool:
        return not self.os_accounts and os.geteuid() == 0

    # -- process set-up ----------------------------------------------------------------

    def make_preexec_fn(self, name: str):
        return super().make_preexec_fn(name) if self.os_accounts else None

    def user_env(self, env: dict) -> dict:
        if self.os_accounts:
            return super().user_env(env)
        env["USER"] = self.user.name
        env["HOME"] = str(self.workspace)
        env["SHELL"] = "/bin/bash"
        return env

    def get_args(self) -> list[str]:
        args = list(super().get_args())  # a copy: the base may hand back self.args itself
        if self._runs_as_root() and self.allow_root:
            args.append("--allow-root")
        return args

    # -- lifecycle ---------------------------------------------------------------------

    def _emit(self, progress: int, message: str) -> None:
        self._events.append({"progress": progress, "message": message})
        self._events_changed.set()

    async def progress(self) -> AsyncIterator[dict]:
        events, sent = self._events, 0
        while True:
            if self._events is not events:  # a new start() began: follow its events
                events, sent = self._events, 0
            if sent < len(events):
                yield events[sent]
                sent += 1
                continue  # re-check: the list may have been replaced while we yielded
            # No await between the checks above and clear(): nothing can slip in between.
            self._events_changed.clear()
            await self._events_changed.wait()

    async def stop(self, now: bool = False) -> None:
        self._events = []
        await super().stop(now=now)

    async def start(self) -> tuple[str, int]:
        self._events = []
        self._events_changed.set()
        if self._runs_as_root() and not self.allow_root:
            raise spawn_error(
                "The hub runs as root and servers would run as root too, which this hub "
                "refuses (MLFactoryLocalSpawner.allow_root = False). Ask an admin to run "
                "the hub as an unprivileged user or enable os_accounts.",
                reason="root",
            )
        if self.port == 0:
            self.port = random_port()
        self._emit(10, "Preparing your workspace")
        cwd = None
        if not self.os_accounts:
            _private_dirs(self.workspace)
            cwd = str(self.workspace)
        _private_dirs(self.log_path.parent)

        cmd = [*self.cmd, *self.get_args()]
        env = self.get_env()
        self.log.info("Spawning %s (log: %s)", shlex.join(cmd), self.log_path)
        self._emit(30, "Starting JupyterLab")
        # The log holds the user's paths and tracebacks: owner-only, like the workspace.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as log:
            self._log_offset = log.tell()
            popen_kwargs = {
                "cwd": cwd,
                "stdin": subprocess.DEVNULL,
                "stdout": log,
                "stderr": subprocess.STDOUT,
                "preexec_fn": self.make_preexec_fn(self.user.name),
                "start_new_session": True,  # the hub's signals are not the server's
                **self.popen_kwargs,
                "env": env,  # as in LocalProcessSpawner: config may not override the env
            }
            self.proc = subprocess.Popen(cmd, **popen_kwargs)  # noqa: ASYNC220 - returns at once
        self.pid = self.proc.pid
        ip = self.ip or "127.0.0.1"
        self._emit(50, "Waiting for JupyterLab to accept connections")
        await self._wait_until_listening(ip, self.port)
        self._emit(90, "JupyterLab is ready")
        return ip, self.port

    async def _wait_until_listening(self, ip: str, port: int) -> None:
        """Return once ``ip:port`` accepts a TCP connection; fail fast if the process exits."""
        while True:
            returncode = self.proc.poll()
            if returncode is not None:
                self.clear_state()
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
