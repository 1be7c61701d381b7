"""Where a local server runs and as whom, for ``MLFactoryLocalSpawner``: its OS account
(``user_accounts``), its user's home folder under ``workspace_root`` and its own folder in
it, each made ready before the server starts (``os_accounts`` does the system work).

Every name derived from a user or server name goes through ``slugs.safe_slug``.

A mixin: it reads the spawner's ``user_accounts``, ``workspace_root``, ``allow_root`` and
``cmd``.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from pathlib import Path

from .os_accounts import (
    ensure_os_account,
    home_problem,
    interpreter_problem,
    os_account_name,
    owned_dir,
    private_dirs,
    traversable_dirs,
)
from .slugs import safe_slug
from .startup import spawn_error


class WorkspaceMixin:
    """A server's account and folders; mixed into MLFactoryLocalSpawner."""

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
    def accounts_mode(self) -> str:
        if self.user_accounts != "auto":
            return self.user_accounts
        return "create" if os.geteuid() == 0 else "none"

    def _runs_as_root(self) -> bool:
        return self.accounts_mode == "none" and os.geteuid() == 0

    def user_env(self, env: dict) -> dict:
        if self.accounts_mode == "existing":
            return super().user_env(env)
        env["USER"] = self.user.name
        env["HOME"] = str(self.workspace)
        env["SHELL"] = "/bin/bash"
        return env

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
