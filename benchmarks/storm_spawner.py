"""No-process spawners for the storm benchmark (``storm.py``), and the one stub server
they point at. Benchmark code only: nothing in the product imports this.

* ``StubSpawner``: vanilla JupyterHub's side, a ``Spawner`` that starts nothing and returns
  the stub server's address (what JupyterHub's own test suite does with a mock spawner).
* ``StormSpawner``: mlfactory's ``MLFactoryLocalSpawner`` with all of its work — the
  user's options resolved and priced, the budget gate, progress, the journal, the ledger
  state, the session's end told to the service — except starting a process: the server
  it reports is the stub server.

Both also run the event-loop probe in the hub (a callback every ``PROBE_S`` that records
how late it woke) and append one line per gate call / stall to ``$STORM_METRICS``.

    python benchmarks/storm_spawner.py PORT    # the stub server: answers 200 to anything
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from typing import Any

from jupyterhub.spawner import Spawner
from mlfactory.spawner.local import MLFactoryLocalSpawner

PROBE_S = 0.05
STALL_S = 0.1  # a wake-up later than this is a stall


def _record(**fields: Any) -> None:
    path = os.environ.get("STORM_METRICS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(fields) + "\n")


_probe_started = False


def _start_probe() -> None:
    """Once per hub process, on the hub's running loop."""
    global _probe_started
    if _probe_started:
        return
    _probe_started = True

    async def probe() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            late = time.perf_counter() - t0 - PROBE_S
            if late > STALL_S:
                _record(kind="stall", at=time.time(), ms=late * 1000)

    asyncio.get_running_loop().create_task(probe())
    gc_started: list[float] = []
    young: list[float] = []  # young collections' pauses, written in sums (they are many)

    def collected(phase: str, info: dict[str, int]) -> None:
        # every collection's pause, in both hubs: how much of the stalls is the collector
        if phase == "start":
            gc_started[:] = [time.perf_counter()]
        elif gc_started:
            ms = (time.perf_counter() - gc_started[0]) * 1000
            if info["generation"] == 2:
                _record(kind="gc", generation=2, ms=ms)
            else:
                young.append(ms)
            if len(young) >= 200 or (young and info["generation"] == 2):
                _record(kind="gc", generation=0, ms=sum(young))
                young.clear()

    gc.callbacks.append(collected)
    snapshot = os.environ.get("STORM_TRACEMALLOC")
    if snapshot:  # storm.py --tracemalloc: what the spawns allocate, dumped on SIGUSR2
        import signal
        import tracemalloc

        tracemalloc.start(10)
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGUSR2, lambda: tracemalloc.take_snapshot().dump(snapshot)
        )


def _stub() -> tuple[str, int, int]:
    return "127.0.0.1", int(os.environ["STORM_STUB_PORT"]), int(os.environ["STORM_STUB_PID"])


class StubSpawner(Spawner):
    """Starts nothing; the server is the stub server (vanilla JupyterHub's side)."""

    async def start(self) -> tuple[str, int]:
        _start_probe()
        ip, port, _ = _stub()
        self._running = True
        return ip, port

    async def poll(self) -> int | None:
        return None if getattr(self, "_running", False) else 0

    async def stop(self, now: bool = False) -> None:
        self._running = False


class StormSpawner(MLFactoryLocalSpawner):
    """mlfactory's local spawner with the process start replaced by the stub server."""

    async def _admit(self, request: Any) -> None:
        _start_probe()
        t0 = time.perf_counter()
        refused = False
        try:
            await super()._admit(request)
        except Exception:
            refused = True
            raise
        finally:
            _record(kind="gate", ms=(time.perf_counter() - t0) * 1000, refused=refused)

    async def _start(self) -> tuple[str, int]:
        request = self.resource_request or await self._resolve()
        self._emit(25, "Preparing your workspace")
        ip, port, pid = _stub()
        self.port = port
        self._emit(50, f"Starting JupyterLab ({request.display_name})")
        self.pid = pid  # the journal records a live process, as for a real server
        await asyncio.to_thread(self._journal_started)
        self._emit(70, "Waiting for JupyterLab to accept connections")
        await asyncio.to_thread(self._journal_ready)
        self._emit(100, "Ready")
        return ip, port

    async def poll(self) -> int | None:
        return None if self.pid else 0

    async def stop(self, now: bool = False) -> None:
        # LedgerMixin's end of session without the process kill below it
        self._restart_progress()
        ledger, self.ledger = self.ledger, None
        self.pid = 0
        await self._ledger_ended("stopped", ledger)


def serve(port: int) -> None:
    """The stub server every spawned "server" points at: 200 and an empty JSON body."""
    from tornado import ioloop, web
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    class Any200(web.RequestHandler):
        def get(self, *_: str) -> None:
            self.write({})

        post = put = delete = head = get

    # a deep accept queue: a thousand hubs' checks arrive at once (tornado's default is 128)
    server = HTTPServer(web.Application([(r"/(.*)", Any200)]))
    server.add_sockets(bind_sockets(port, "127.0.0.1", backlog=4096))
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
