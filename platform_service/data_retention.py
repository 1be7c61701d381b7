"""How long the audit of data credentials is kept: the verdict, pure (no I/O, no clock:
``now`` is passed in). A credential's row (who, which store and server, what the store
counted) may go ``data.audit.keep_days`` after it was dropped; an issue, renewal, drop or
refusal event that long after it happened. A credential not dropped yet is never due, however
old its issue: the audit of a live credential stays. ``data_broker`` does the deleting, in
batches (``data_db.delete_audit_batch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

DAY = 86400
# rows per DELETE: each batch is its own short transaction, so SQLite's single writer lock is
# never held for a whole year of audit at once and issues keep going between batches
BATCH = 500
# between two full batches the pass lets go for this long (s): a write waiting on SQLite's
# lock polls at up to 100 ms intervals (its busy handler), so back-to-back batches could
# starve it; one batch takes ~15 ms, and the hourly pass rarely has more than one
PAUSE_S = 0.1
# batches one data tick runs at most (~2 s with the pauses); a larger backlog, e.g. years
# of audit at the first pass after an upgrade, is worked off over the following ticks
MAX_BATCHES_PER_TICK = 20
# the pass rides on the data tick (every minute) but needs to run only this often
EVERY_S = 3600


def keep_seconds(keep_days: int) -> int | None:
    """``data.audit.keep_days`` in seconds; None: kept forever (``0``)."""
    return keep_days * DAY if keep_days > 0 else None


def cutoff(keep_s: int, now: float) -> float:
    """Rows that ended (or events that happened) at or before this time are due."""
    return now - keep_s


def credential_due(dropped_at: float | None, keep_s: int | None, now: float) -> bool:
    """Whether a credential's audit row may go: dropped ``keep_s`` seconds ago or more."""
    if keep_s is None or dropped_at is None:
        return False
    return dropped_at <= cutoff(keep_s, now)


def event_due(at: float, keep_s: int | None, now: float) -> bool:
    """Whether an audit event may go: it happened ``keep_s`` seconds ago or more."""
    return keep_s is not None and at <= cutoff(keep_s, now)


def pass_due(last: float | None, now: float, every_s: int = EVERY_S) -> bool:
    """Whether the data tick runs the retention pass now: at its first tick, then once per
    ``every_s`` (a clock set back does not stall it: a pass "in the future" counts as due)."""
    return last is None or now - last >= every_s or now < last


@dataclass(frozen=True)
class Removed:
    """What one pass deleted; ``more``: it stopped at its batch limit with rows left."""

    credentials: int = 0
    events: int = 0
    more: bool = False

    def __bool__(self) -> bool:
        return bool(self.credentials or self.events)

    def message(self, keep_days: int, bound: float) -> str:
        """The service log's line for this pass."""
        before = datetime.fromtimestamp(bound, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"Data audit retention (data.audit.keep_days: {keep_days}): deleted "
            f"{self.credentials} credential record(s) dropped and {self.events} event(s) "
            f"from before {before}" + ("; more at the next tick" if self.more else "")
        )
