"""``Runner``: where model work runs, with a per-request timeout and a bound on pending jobs.

Model work (validation, the model call, shaping, JSON encoding) is one job per request: in a
small thread pool, or inline on the event loop for small requests to models that have
proven fast. Python cannot interrupt a thread, so a job that outlives its request keeps its
thread until it returns: the request is answered 504 at once, the job counts as pending,
and once pending jobs reach ``max_pending`` new requests get 503 with ``Retry-After``
instead of queueing behind a stuck model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .errors import Overloaded, PredictionTimeout

log = logging.getLogger("mlfactory.model_api")


@dataclass
class _Speed:
    """Recent job times of one model (whole job: validation, call, shaping, encoding)."""

    streak: int = 0  # consecutive pooled jobs within the inline budget
    demotions: int = 0  # inline jobs that went over it


class Runner:
    """Runs model work with a per-request timeout: in a thread pool, or inline when safe.

    ``execution="thread"``: every job runs in the pool; the request is answered 504 at its
    deadline and the event loop never waits on model code. ``execution="auto"`` (default):
    a small request (``inline_max_rows``) to a model whose last ``warmup_jobs`` pooled jobs
    were all fast runs inline on the event loop, which saves the thread hand-off (about a
    quarter of a 1-row prediction's CPU on a 2-core machine). A job is slow when it used more
    than ``inline_budget`` seconds of CPU, or took ten times that on the wall clock (a model
    that waits on a lock or the network). CPU time, not wall time, so that a busy machine
    preempting a fast model does not count against it. An inline slow job sends its model
    back to the pool, and each such demotion doubles the streak of fast pooled jobs needed to
    come back. The limit, stated plainly: a model that was fast and then hangs inside one
    inline call stalls the server until that call returns; serve models you do not trust to
    stay fast with ``execution="thread"``.
    """

    def __init__(
        self,
        workers: int = 4,
        timeout: float = 30.0,
        max_pending: int | None = None,
        *,
        execution: str = "auto",
        inline_budget: float = 0.002,
        inline_max_rows: int = 64,
        warmup_jobs: int = 8,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        if execution not in ("auto", "thread"):
            raise ValueError(f"execution must be 'auto' or 'thread', got {execution!r}")
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="mlfactory-model")
        self.timeout = timeout
        self.max_pending = max_pending or workers * 16
        self.pending = 0
        self.execution = execution
        self.inline_budget = inline_budget
        self.inline_max_rows = inline_max_rows
        self.warmup_jobs = warmup_jobs
        self.clock = clock
        self.cpu_clock = cpu_clock
        self._speed: dict[Any, _Speed] = {}

    def _slow(self, wall: float, cpu: float) -> bool:
        return cpu > self.inline_budget or wall > 10 * self.inline_budget

    def _timed(self, speed: _Speed, fn: Callable[..., Any], *args: Any) -> Any:
        t0, c0 = self.clock(), self.cpu_clock()
        try:
            return fn(*args)
        finally:
            slow = self._slow(self.clock() - t0, self.cpu_clock() - c0)
            speed.streak = 0 if slow else speed.streak + 1

    def runs_inline(self, key: Any, rows: int) -> bool:
        sp = self._speed.get(key)
        return (
            self.execution == "auto"
            and sp is not None
            and rows <= self.inline_max_rows
            and sp.streak >= self.warmup_jobs << min(sp.demotions, 10)
        )

    async def call(self, fn: Callable[..., Any], *args: Any, key: Any = None, rows: int = 1) -> Any:
        speed = self._speed.setdefault(key, _Speed())
        if self.runs_inline(key, rows):
            t0, c0 = self.clock(), self.cpu_clock()
            try:
                return fn(*args)
            finally:
                wall, cpu = self.clock() - t0, self.cpu_clock() - c0
                if self._slow(wall, cpu):
                    speed.demotions += 1
                    speed.streak = 0
                    log.warning(
                        "model %s took %.1f ms (%.1f ms CPU) inline, over its budget: back to "
                        "the thread pool",
                        key,
                        wall * 1e3,
                        cpu * 1e3,
                    )
        if self.pending >= self.max_pending:
            raise Overloaded(
                f"{self.pending} predictions are pending (some may be stuck past the "
                f"{self.timeout:g} s timeout); retry later",
                retry_after=max(1.0, self.timeout),
            )
        # A bare future, a done-callback and a timer: asyncio.wait_for + shield would cost a
        # Task and two extra futures per request, a measurable share of a 100 µs prediction.
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.pending += 1
        cf = self.pool.submit(self._timed, speed, fn, *args)
        cf.add_done_callback(lambda f: loop.call_soon_threadsafe(self._settle, waiter, f))
        timer = loop.call_later(self.timeout, self._expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _settle(self, waiter: asyncio.Future[Any], cf: Future[Any]) -> None:
        self.pending -= 1
        exc = cf.exception()  # always retrieved, even when the request already timed out
        if waiter.done():
            if exc is not None:
                log.warning("a prediction that had timed out failed later: %r", exc)
            return
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(cf.result())

    def _expire(self, waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_exception(
                PredictionTimeout(
                    f"the prediction took longer than {self.timeout:g} s",
                    {"timeout_s": self.timeout},
                )
            )

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
