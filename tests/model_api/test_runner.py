"""Where model jobs run: the pool (timeouts hold) or inline for models proven fast.

Durations come from injected wall and CPU clocks that each job advances: no sleeping, no
real time."""

from __future__ import annotations

import threading

import pytest
from mlfactory.model_api.runner import Runner


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


CPU = Clock()


def job(clock: Clock, cost: float, cpu: float | None = None) -> str:
    """Takes ``cost`` seconds of wall time, of which ``cpu`` (default: all) on the CPU."""
    clock.now += cost
    CPU.now += cost if cpu is None else cpu
    return threading.current_thread().name


def pooled(name: str) -> bool:
    return name.startswith("mlfactory-model")


async def test_fast_model_goes_inline_after_warmup_and_back_when_slow(clock):
    r = Runner(workers=1, warmup_jobs=3, inline_budget=0.002, clock=clock, cpu_clock=CPU)
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
    r = Runner(workers=1, warmup_jobs=2, inline_budget=0.002, clock=clock, cpu_clock=CPU)
    costs = [0.001, 0.003, 0.001, 0.001, 0.001]
    where = [pooled(await r.call(job, clock, c, key="m")) for c in costs]
    assert where == [True, True, True, True, False]
    # models are tracked apart
    fast = [pooled(await r.call(job, clock, 0.001, key="other")) for _ in range(3)]
    assert fast == [True, True, False]
    r.shutdown()


async def test_thread_execution_never_runs_inline(clock):
    r = Runner(workers=1, warmup_jobs=1, execution="thread", clock=clock, cpu_clock=CPU)
    assert all([pooled(await r.call(job, clock, 0.0, key="m")) for _ in range(5)])
    with pytest.raises(ValueError, match="auto' or 'thread"):
        Runner(execution="inline")
    r.shutdown()


async def test_preemption_is_not_slowness_but_waiting_is(clock):
    r = Runner(workers=1, warmup_jobs=2, inline_budget=0.002, clock=clock, cpu_clock=CPU)
    # 5 ms on the wall clock but 1 ms of CPU: a busy machine, not a slow model
    where = [pooled(await r.call(job, clock, 0.005, 0.001, key="m")) for _ in range(3)]
    assert where == [True, True, False]
    # 50 ms waiting on something (little CPU): slow, back to the pool
    assert not pooled(await r.call(job, clock, 0.05, 0.0001, key="m"))
    assert pooled(await r.call(job, clock, 0.001, key="m"))
    r.shutdown()
