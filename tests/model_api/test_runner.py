"""Where model jobs run: the pool (timeouts hold) or inline for models proven fast.

Durations come from an injected clock that each job advances: no sleeping, no wall time."""

from __future__ import annotations

import threading

import pytest
from mlfactory.model_api.server import Runner


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def job(clock: Clock, cost: float) -> str:
    clock.now += cost
    return threading.current_thread().name


def pooled(name: str) -> bool:
    return name.startswith("mlfactory-model")


async def test_fast_model_goes_inline_after_warmup_and_back_when_slow(clock):
    r = Runner(workers=1, warmup_jobs=3, inline_budget=0.002, clock=clock)
    where = [await r.call(job, clock, 0.001, key="m") for _ in range(4)]
    assert [pooled(w) for w in where] == [True, True, True, False]
    # a large request still goes to the pool
    assert pooled(await r.call(job, clock, 0.001, key="m", rows=1000))
    # an inline job over budget sends the model back to the pool; coming back takes twice
    # the streak of fast pooled jobs
    assert not pooled(await r.call(job, clock, 0.005, key="m"))
    where = [await r.call(job, clock, 0.0001, key="m") for _ in range(7)]
    assert [pooled(w) for w in where] == [True] * 6 + [False]
    r.shutdown()


async def test_a_slow_pooled_job_restarts_the_streak(clock):
    r = Runner(workers=1, warmup_jobs=2, inline_budget=0.002, clock=clock)
    costs = [0.001, 0.003, 0.001, 0.001, 0.001]
    where = [pooled(await r.call(job, clock, c, key="m")) for c in costs]
    assert where == [True, True, True, True, False]
    # models are tracked apart
    fast = [pooled(await r.call(job, clock, 0.001, key="other")) for _ in range(3)]
    assert fast == [True, True, False]
    r.shutdown()


async def test_thread_execution_never_runs_inline(clock):
    r = Runner(workers=1, warmup_jobs=1, execution="thread", clock=clock)
    assert all([pooled(await r.call(job, clock, 0.0, key="m")) for _ in range(5)])
    with pytest.raises(ValueError, match="auto' or 'thread"):
        Runner(execution="inline")
    r.shutdown()
