"""Calendar-aligned budget periods in the platform's time zone. Pure: ``now`` is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["monthly", "weekly"]


def period_bounds(period: Period, now: float, tz: ZoneInfo) -> tuple[float, float]:
    """The ``[start, end)`` of the period containing ``now``, as UTC epoch seconds.

    Months start at local midnight on the 1st, weeks at local midnight on Monday.
    """
    local = datetime.fromtimestamp(now, tz)
    if period == "monthly":
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end = start.replace(year=year, month=month)
    elif period == "weekly":
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        raise ValueError(f"unknown period {period!r}; use 'monthly' or 'weekly'")
    # Aware datetimes in one ZoneInfo do wall-clock arithmetic and resolve their UTC
    # offset at the wall time, so a DST change inside the period moves neither edge.
    return start.timestamp(), end.timestamp()


def day_starts(start: float, end: float, tz: ZoneInfo) -> list[float]:
    """Local midnights from the day containing ``start`` up to (not including) ``end``."""
    day = datetime.fromtimestamp(start, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    while (t := day.timestamp()) < end:
        out.append(t)
        day += timedelta(days=1)
    return out


def iso_day(t: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, tz).date().isoformat()


def iso_utc(t: float | None) -> str | None:
    """Epoch seconds → ISO 8601 in UTC with a ``Z``, as the hub's REST API writes times."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def readable_utc(t: float) -> str:
    """Epoch seconds → ``2026-12-01 00:00 UTC``, for messages people read."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_iso(text: str) -> float:
    """An ISO 8601 time (the hub writes ``...Z``) → epoch seconds; naive times are UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
