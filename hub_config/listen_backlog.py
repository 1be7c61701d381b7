"""The hub's listening socket, widened for a class that presses Start at once.

JupyterHub listens through tornado, whose backlog is 128 connections. When a thousand
spawn requests arrive within a second and the hub's event loop is busy for seconds at a
time (it is, in both a vanilla hub and ours), the proxy's connections overflow that queue:
the kernel drops them, and configurable-http-proxy answers the user ``503 … read
ECONNRESET`` (measured by ``benchmarks/storm.py``: ``ss -ltn`` showed the hub's queue at
129 of 128 while 22 of 1,000 spawns failed so). Linux lets a listening socket's backlog
be changed by calling ``listen`` again, so once the hub listens, its sockets are given
``BACKLOG`` (the kernel caps it at ``net.core.somaxconn``, 4096 by default).

JupyterHub has no setting for this and binds in the middle of ``JupyterHub.start``, so the
hub's config (`hubconfig.when_listening`) waits for the hub's server to exist (`listening`)
and then calls `widen`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("mlfactory.hub")

BACKLOG = 2048
WAIT_S = 600.0  # a hub still not listening after this has other problems


def listening_sockets(app: Any) -> list[Any]:
    """The hub's listening sockets once ``JupyterHub.start`` has bound them, else []."""
    server = getattr(app, "http_server", None)
    # tornado's TCPServer keeps them by file descriptor (a private but long-stable name)
    return list(getattr(server, "_sockets", {}).values())


async def listening(app: Any, poll_s: float = 0.05) -> list[Any]:
    """``app``'s listening sockets, once ``JupyterHub.start`` has bound them ([] if it did
    not within WAIT_S): the moment the hub has started."""
    for _ in range(int(WAIT_S / poll_s)):
        sockets = listening_sockets(app)
        if sockets:
            return sockets
        await asyncio.sleep(poll_s)
    return []


def widen(sockets: list[Any], backlog: int = BACKLOG) -> None:
    """Give the hub's listening ``sockets`` ``backlog``."""
    for sock in sockets:
        sock.listen(backlog)
    log.info("The hub's listen backlog is %d connections (tornado's default: 128)", backlog)
