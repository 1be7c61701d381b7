"""A server session's place in the platform service's ledger, for mlfactory's spawners.

Before a spawn, a fresh session (``journal.new_ledger``) goes to the budget gate
(``budget_check``), which refuses or admits it. Once the process exists the session is
written to the journal, marked ready when the server accepts connections, and stamped
stopped when it ends (a stop, an exit or a failed start), when the service is also told at
once (``budget_check.ended``) so the server stops counting. The session is kept in the
spawner's state (``state["mlfactory"]["ledger"]``), where the service reads it through the
hub's API.

A mixin: it reads the spawner's ``budget_check`` and ``journal_root`` and reports through
its ``_emit``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jupyterhub.utils import maybe_future
from mlfactory.hub.platform_config import journal_dir
from traitlets import Any as AnyTrait
from traitlets import HasTraits, Unicode, default

from .journal import Journal, new_ledger, record_of
from .profiles import ResourceRequest
from .startup import spawn_error


class LedgerMixin(HasTraits):
    """The spawner's side of the ledger; mixed into MLFactoryLocalSpawner and
    MLFactoryDockerSpawner (its traits are configured under the spawner's own name)."""

    budget_check = AnyTrait(
        None,
        config=True,
        allow_none=True,
        help="""Optional ``async def check(spawner, request) -> str | None``: return a message
        to refuse the spawn (shown to the user), or None to allow it. ``request`` is the
        resolved ``mlfactory.spawner.profiles.ResourceRequest``. Called before anything
        starts. The shipped hub config sets it to the platform service's budget gate.""",
    )

    journal_root = Unicode(
        config=True,
        help="""Folder where each running server is recorded for the platform service's
        ledger (one file per session, mode 0600, with its process or container): it lets the
        service charge a server the hub lost track of and close a session at its real stop
        time.

        Default: ``$MLFACTORY_DATA/runtime/servers``.
        """,
    )

    @default("journal_root")
    def _default_journal_root(self) -> str:
        return str(journal_dir())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger: dict[str, Any] | None = None  # this session as the ledger knows it

    async def _admit(self, request: ResourceRequest) -> None:
        """Open this spawn's session and ask the budget gate; a refusal is a SpawnException
        with the gate's message."""
        groups = [g.name for g in self.user.groups]
        self.ledger = new_ledger(self.user.name, self.name, groups, request)
        self._emit(15, "Checking budget")
        if self.budget_check is not None:
            refusal = await maybe_future(self.budget_check(self, request))
            if refusal:
                self.ledger = None
                raise spawn_error(str(refusal), reason="budget", status_code=403)

    def _journal_started(self, container: str = "") -> None:
        """Record the session once its server exists: the process ``self.pid`` or, for the
        container backend, ``container`` (its id)."""
        if self.ledger is None:
            return
        self.ledger["ready"] = False  # until it accepts connections; if it never does: free
        pid = 0 if container else self.pid
        Journal(self.journal_root).write(record_of(self.ledger, pid, container))

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
        return status

    async def stop(self, now: bool = False) -> None:
        # Taken out first: the polls inside JupyterHub's stop would report it as "exited".
        ledger, self.ledger = self.ledger, None
        try:
            await super().stop(now=now)
        except BaseException:
            self.ledger = self.ledger or ledger  # still running, as far as we know
            raise
        await self._ledger_ended("stopped", ledger)

    def get_state(self) -> dict:
        state = super().get_state()
        if self.ledger is not None:
            # The platform service reads the price from here (the hub's API, admin:server_state)
            state.setdefault("mlfactory", {})["ledger"] = self.ledger
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.ledger = (state.get("mlfactory") or {}).get("ledger") or self.ledger

    def clear_state(self) -> None:
        super().clear_state()
        self.ledger = None
