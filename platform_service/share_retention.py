"""How long the snapshots of an ended notebook share are kept: the verdict, pure (no I/O, no
clock: ``now`` is passed in). A share ends when it is revoked or its expiry passes; once it
has been ended for ``sharing.retention.keep_revoked``, its snapshot files (and rendered
previews) may be deleted. The share's row, its versions' sizes and digests and every audit
event stay: the audit outlives the notebook. ``share_store.py`` does the deleting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Who the audit names for a deletion made by the retention pass, not by a person.
ACTOR = "mlfactory"


@dataclass(frozen=True)
class Ended:
    """What the verdict needs of one share."""

    share_id: str
    revoked_at: float | None
    expires_at: float | None


def ended_at(share: Ended, now: float) -> float | None:
    """When the share ended (revoked, or its expiry passed), or None while it is live."""
    times = [t for t in (share.revoked_at, share.expires_at) if t is not None and t <= now]
    return min(times) if times else None


def is_due(share: Ended, keep_s: int | None, now: float) -> bool:
    """Whether its snapshots may go: ended ``keep_s`` seconds ago or more. ``keep_s`` None
    keeps them forever; 0 deletes them at the first pass after the end."""
    if keep_s is None:
        return False
    end = ended_at(share, now)
    return end is not None and now - end >= keep_s


def due(shares: Iterable[Ended], keep_s: int | None, now: float) -> list[str]:
    """The ids whose snapshots may be deleted now, sorted (a stable order for the log)."""
    return sorted(s.share_id for s in shares if is_due(s, keep_s, now))


def cutoff(keep_s: int, now: float) -> float:
    """Shares that ended at or before this time are due: the store's query bound."""
    return now - keep_s
