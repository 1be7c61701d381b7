"""The server's managed identity, kept current while the server runs: the extension asks the
platform service for a fresh one with the server's own hub token, writes it to a 0600 file
in the server's runtime dir (``MLFACTORY_IDENTITY_FILE``, which kernels inherit and
``mlfactory.data`` reads at each call), revokes the one it replaced after the overlap, and
revokes them all when the server stops. When is ``identity_schedule``.

The server pulls rather than the hub pushing, so the same code works for local processes,
containers and Kubernetes pods: all it needs is the service's URL and its own token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from . import service_client
from .identity_schedule import Held, backoff, describe, held_from, next_attempt
from .service_client import Target

IDENTITY_FILE_ENV = "MLFACTORY_IDENTITY_FILE"
SETTINGS_KEY = "mlfactory_identity"
STOP_TIMEOUT_S = 5.0  # revoking at stop must not hold the server's shutdown for long
WORDING = service_client.Wording(
    endpoint="identity",
    unreachable="this server's data identity cannot be renewed",
    not_configured="data identities are not issued here",
)
log = logging.getLogger("mlfactory.server.identity")


def write_identity(path: Path, held: Held) -> None:
    """Replace the identity file in one step (readers see the old or the new, never half),
    created 0600: only the server's own account may read it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(
            fd,
            json.dumps(
                {"token": held.token, "token_id": held.token_id, "expires_at": held.expires_at}
            ).encode(),
        )
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)  # O_CREAT honours the umask only when it creates the file
    os.replace(tmp, path)


class IdentityKeeper:
    """Rotates one server's identity; ``clock`` and ``sleep`` are injected for tests."""

    def __init__(
        self,
        target: Target,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.target = target
        self.path = path
        self.clock = clock
        self.sleep = sleep
        self.held: Held | None = None
        self.failures = 0
        self._task: asyncio.Task | None = None
        self._revokes: set[asyncio.Task] = set()

    async def rotate_once(self) -> bool:
        """Ask for a new identity; on success it is in the file and the previous one is
        revoked after the overlap. On failure the current one stays (until it expires)."""
        answer = await service_client.call(
            self.target.url("identity"), self.target.token, WORDING, method="POST", body={}
        )
        now = self.clock()
        body = answer.body
        if not answer.ok or not {"token", "token_id", "issued_at"} <= set(body):
            self.failures += 1
            log.warning(
                "Could not renew this server's data identity (%s); %s. Retrying in %.0fs.",
                answer.problem or f"answer without a token ({answer.status})",
                describe(self.held, now),
                backoff(self.failures),
            )
            return False
        previous, self.held = self.held, held_from(body, now)
        await asyncio.get_running_loop().run_in_executor(None, write_identity, self.path, self.held)
        self.failures = 0
        if previous is not None:
            task = asyncio.ensure_future(self._revoke_later(previous.token_id, self.held.overlap))
            self._revokes.add(task)
            task.add_done_callback(self._revokes.discard)
        log.info("Data identity %s in use until its rotation", self.held.token_id)
        return True

    async def _revoke_later(self, token_id: str, after: float) -> None:
        await self.sleep(after)
        url = self.target.url(f"identity/{token_id}")
        answer = await service_client.call(url, self.target.token, WORDING, method="DELETE")
        if not answer.ok:  # it still ends at its expiry
            log.warning("Could not revoke the replaced identity %s: %s", token_id, answer.problem)

    async def run(self) -> None:
        """Rotate for as long as the server runs."""
        while True:
            wait = next_attempt(self.clock(), self.held, self.failures) - self.clock()
            if wait > 0:
                await self.sleep(wait)
            try:
                await self.rotate_once()
            except OSError as e:  # the runtime dir is not writable: say so, retry later
                self.failures += 1
                log.warning("Could not write the data identity to %s: %s", self.path, e)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self.run())

    async def stop(self) -> None:
        """Stop rotating, revoke every identity of this server, remove the file."""
        for task in [self._task, *self._revokes]:
            if task is not None:
                task.cancel()
        self._task = None
        answer = await service_client.call(
            self.target.url("identity"),
            self.target.token,
            WORDING,
            method="DELETE",
            timeout_s=STOP_TIMEOUT_S,
        )
        if not answer.ok:  # they end at their expiry
            log.warning("Could not revoke this server's identities at stop: %s", answer.problem)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def setup(app: Any) -> None:
    """Under JupyterHub: make the keeper and export the file's path for kernels. A server
    without the platform service (standalone ``jupyter lab``) has no identity."""
    target = service_client.target_from_env()
    if not isinstance(target, Target):
        return
    runtime = Path(app.serverapp.runtime_dir)
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    # one file per server process: a user's named servers may share a runtime dir
    path = runtime / f"mlfactory-identity-{os.getpid()}.json"
    os.environ[IDENTITY_FILE_ENV] = str(path)  # kernels started from now on inherit it
    app.settings[SETTINGS_KEY] = IdentityKeeper(target, path)
