"""When a server replaces its identity (``server_ext/identity_schedule.py``, pure)."""

from __future__ import annotations

from mlfactory.server.identity_schedule import (
    MAX_RETRY_S,
    backoff,
    describe,
    held_from,
    next_attempt,
)

ANSWER = {
    "token": "t",
    "token_id": "a1",
    "issued_at": 5000.0,
    "rotate_at": 5900.0,
    "expires_at": 6800.0,
    "overlap": 60,
}


def test_spans_count_from_when_the_answer_came_whatever_the_services_clock():
    held = held_from(ANSWER, received=100.0)  # this clock is far behind the service's
    assert (held.rotate_at, held.expires_at, held.overlap) == (1000.0, 1900.0, 60.0)
    assert not held.expired(1899.0) and held.expired(1900.0)


def test_first_at_once_then_at_the_rotation():
    assert next_attempt(100.0, None, failures=0) == 100.0
    held = held_from(ANSWER, received=100.0)
    assert next_attempt(150.0, held, failures=0) == 1000.0


def test_failures_back_off_doubling_up_to_a_cap():
    assert [backoff(n) for n in range(5)] == [0.0, 5.0, 10.0, 20.0, 40.0]
    assert backoff(30) == MAX_RETRY_S
    held = held_from(ANSWER, received=100.0)
    # a failed rotation retries soon, not at the (past) rotation time
    assert next_attempt(1000.0, held, failures=2) == 1010.0


def test_the_log_says_what_a_failure_leaves_the_kernels():
    held = held_from(ANSWER, received=100.0)
    assert "keeps its current identity, valid for 900s" in describe(held, 1000.0)
    assert "expired" in describe(held, 1900.0)
    assert "no identity yet" in describe(None, 0.0)
