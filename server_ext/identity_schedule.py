"""When a server replaces its managed identity (pure; the clock is passed in): at the time the
service named, and after a failure with a growing backoff until it works again, while the
identity in hand stays in use until it expires."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FIRST_RETRY_S = 5.0
MAX_RETRY_S = 300.0


@dataclass(frozen=True)
class Held:
    """The identity in hand, its times on this server's clock (epoch seconds)."""

    token: str
    token_id: str
    expires_at: float
    rotate_at: float
    overlap: float

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


def held_from(answer: dict[str, Any], received: float) -> Held:
    """The service's answer as times on this clock: each span counted from when the answer
    came, so a skew between the service's clock and ours changes nothing."""
    issued = float(answer["issued_at"])
    return Held(
        token=str(answer["token"]),
        token_id=str(answer["token_id"]),
        expires_at=received + float(answer["expires_at"]) - issued,
        rotate_at=received + float(answer["rotate_at"]) - issued,
        overlap=max(0.0, float(answer.get("overlap", 0))),
    )


def backoff(failures: int, first: float = FIRST_RETRY_S, cap: float = MAX_RETRY_S) -> float:
    """Seconds before retry number ``failures`` (1, 2, ...): doubling from ``first`` up to
    ``cap``."""
    if failures <= 0:
        return 0.0
    return min(cap, first * 2 ** (failures - 1))


def next_attempt(now: float, held: Held | None, failures: int) -> float:
    """When to ask for the next identity: now when there is none yet, the rotation time when
    the last try worked, after the backoff when it did not (the identity in hand stays in
    use meanwhile, until it expires)."""
    if failures:
        return now + backoff(failures)
    if held is None:
        return now
    return held.rotate_at


def describe(held: Held | None, now: float) -> str:
    """For the server log: what a failed rotation leaves the kernels with."""
    if held is None:
        return "the server has no identity yet: data credentials are refused until one comes"
    if held.expired(now):
        return "its identity has expired: data credentials are refused until a new one comes"
    return f"it keeps its current identity, valid for {held.expires_at - now:.0f}s more"
