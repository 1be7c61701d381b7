"""What the hub's home page says about the platform, worked out from the platform service's
``/api/home`` answer: the user's running servers (profile, uptime, cost so far), their budgets,
and the notices (budget thresholds crossed, idle-shutdown warnings and stops). Pure: the
answer and the time come in, display text goes out; the template only lays it out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mlfactory.service.charts import level, money

# A stop older than this is history, not news: the dashboard and the API still list it.
STOPS_SHOWN_FOR = timedelta(days=7)
KIND_LABEL = {"user": "Your", "group": "Team", "project": "Project"}


@dataclass(frozen=True)
class ServerLine:
    name: str  # "" is the default server
    label: str
    profile: str
    project: str
    uptime: str
    cost: str
    price: str
    note: str = ""


@dataclass(frozen=True)
class BudgetLine:
    label: str
    spent: str  # "1.20 of 50.00 USD"
    percent: int
    level: str  # "ok", "warn" or "over", as on the dashboard
    resets: str
    enforcement: str


@dataclass(frozen=True)
class Notice:
    kind: str  # "budget" or "culling"
    level: str  # the Bootstrap alert class: "danger", "warning" or "info"
    lines: tuple[str, ...]


@dataclass(frozen=True)
class HomeView:
    available: bool  # False: the service did not answer; say so instead of showing nothing
    currency: str = ""
    servers: tuple[ServerLine, ...] = ()
    budgets: tuple[BudgetLine, ...] = ()
    notices: tuple[Notice, ...] = ()


UNAVAILABLE = HomeView(available=False)


def uptime(hours: float) -> str:
    """``1.51`` → ``1 h 30 min``; days past a day; "under a minute" at first."""
    minutes = int(max(0.0, hours) * 60)
    if minutes < 1:
        return "under a minute"
    days, minutes = divmod(minutes, 24 * 60)
    h, m = divmod(minutes, 60)
    parts = [f"{days} d"] if days else []
    if h or days:
        parts.append(f"{h} h")
    if not days:
        parts.append(f"{m} min")
    return " ".join(parts)


def _parse(iso: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")) if iso else None
    except ValueError:
        return None


def when(iso: str | None, now: float, tz: ZoneInfo) -> str:
    """A moment in the platform's time zone: the time alone today, with the date otherwise."""
    t = _parse(iso)
    if t is None:
        return "soon"
    local = t.astimezone(tz)
    today = datetime.fromtimestamp(now, tz).date()
    fmt = "%H:%M %Z" if local.date() == today else "%Y-%m-%d %H:%M %Z"
    return local.strftime(fmt)


def day(iso: str | None, tz: ZoneInfo) -> str:
    """The calendar day of a moment in the platform's zone (periods reset at its midnight)."""
    t = _parse(iso)
    return t.astimezone(tz).date().isoformat() if t else "-"


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _server_label(name: str) -> str:
    return f"Your server \u201c{name}\u201d" if name else "Your server"


def _number(x: Any) -> float:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else 0.0


def servers(rows: Sequence[Mapping[str, Any]], currency: str) -> tuple[ServerLine, ...]:
    out = []
    for s in sorted(rows, key=lambda s: str(s.get("server_name") or "")):
        name = str(s.get("server_name") or "")
        note = ""
        if s.get("orphaned"):
            note = "The hub lost track of this server; the platform stops it soon."
        out.append(
            ServerLine(
                name=name,
                label=name or "default server",
                profile=str(s.get("profile") or "-"),
                project=str(s.get("project") or "-"),
                uptime=uptime(_number(s.get("hours"))),
                cost=money(_number(s.get("cost_so_far")), currency),
                price=f"{money(_number(s.get('price_per_hour')), currency)}/hour",
                note=note,
            )
        )
    return tuple(out)


def budget_label(b: Mapping[str, Any]) -> str:
    kind = str(b.get("kind") or "")
    name = "" if kind == "user" else f" {b.get('name')}"
    return f"{KIND_LABEL.get(kind, kind.title())}{name} {b.get('period') or ''} budget".strip()


def budgets(
    rows: Sequence[Mapping[str, Any]], currency: str, tz: ZoneInfo
) -> tuple[BudgetLine, ...]:
    """Closest to its limit first: the budget that stops the user first leads."""
    out = []
    for b in sorted(rows, key=lambda b: -_number(b.get("fraction"))):
        spent, amount = _number(b.get("spent")), _number(b.get("amount"))
        fraction = _number(b.get("fraction"))
        thresholds = [_number(t) for t in b.get("thresholds") or ()]
        out.append(
            BudgetLine(
                label=budget_label(b),
                spent=f"{money(spent, '')} of {money(amount, currency)}",
                percent=round(fraction * 100),
                level=level(fraction, thresholds),
                resets=day(b.get("resets_at"), tz),
                enforcement=str(b.get("enforcement") or ""),
            )
        )
    return tuple(out)


def budget_notices(
    notices: Sequence[Mapping[str, Any]],
    standings: Sequence[Mapping[str, Any]],
    currency: str,
    tz: ZoneInfo,
) -> list[Notice]:
    """The highest threshold crossed per budget, the most severe first."""
    best: dict[tuple[str, str], Mapping[str, Any]] = {}
    for n in notices:
        key = (str(n.get("kind")), str(n.get("name")))
        if key not in best or _number(n.get("threshold")) > _number(best[key].get("threshold")):
            best[key] = n
    by_scope = {(str(b.get("kind")), str(b.get("name"))): b for b in standings}
    out = []
    for key, n in sorted(best.items(), key=lambda kv: -_number(kv[1].get("threshold"))):
        threshold = _number(n.get("threshold"))
        lines = [
            str(n.get("message") or f"{key[0]} {key[1]}: {threshold:.0%} of the budget is spent")
        ]
        b = by_scope.get(key)
        if b is not None:
            lines.append(
                f"Spent {money(_number(b.get('spent')), '')} of "
                f"{money(_number(b.get('amount')), currency)} "
                f"({_number(b.get('fraction')):.0%}); resets {day(b.get('resets_at'), tz)}."
            )
        out.append(Notice("budget", "danger" if threshold >= 1 else "warning", tuple(lines)))
    return out


def _presses(n: int) -> str:
    return f"{n} press" if n == 1 else f"{n} presses"


def culling_notices(
    culling: Mapping[str, Any] | None, running: set[str], now: float, tz: ZoneInfo
) -> list[Notice]:
    """Warnings for servers about to be stopped, then the latest stop of each server that has
    not started again (most recent first, within ``STOPS_SHOWN_FOR``)."""
    if not culling:
        return []
    running = set(running)
    out = []
    for s in culling.get("servers") or ():
        name = str(s.get("server_name") or "")
        running.add(name)
        if s.get("action") != "warn":
            continue
        reason = f" because {s['reason']}" if s.get("reason") else ""
        deadline = s.get("deadline")
        at = f"at {when(deadline, now, tz)}" if deadline else "soon"
        left = int(_number(s.get("keep_alive_left")))
        lines = (
            f"{_server_label(name)} will be stopped {at}{reason}.",
            f"Open it and press \u201cKeep running\u201d to keep it ({_presses(left)} left)."
            if left > 0
            else "No \u201cKeep running\u201d presses are left: save your work.",
        )
        out.append(Notice("culling", "warning", lines))
    latest: dict[str, tuple[datetime, Mapping[str, Any]]] = {}
    oldest = datetime.fromtimestamp(now, tz) - STOPS_SHOWN_FOR
    for s in culling.get("stops") or ():
        name = str(s.get("server_name") or "")
        at = _parse(s.get("stopped_at"))
        if name in running or at is None or at < oldest:
            continue
        if name not in latest or at > latest[name][0]:
            latest[name] = (at, s)
    for _at, s in sorted(latest.values(), key=lambda e: e[0], reverse=True):
        reason = f" because {s['reason']}" if s.get("reason") else ""
        line = (
            f"{_server_label(str(s.get('server_name') or ''))} was stopped at "
            f"{when(s.get('stopped_at'), now, tz)}{reason}."
        )
        out.append(Notice("culling", "info", (line,)))
    return out


def home_view(answer: Mapping[str, Any] | None, now: float) -> HomeView:
    """The page's content from the service's answer (None: it did not answer)."""
    if not isinstance(answer, Mapping):
        return UNAVAILABLE
    currency = str(answer.get("currency") or "")
    tz = _zone(answer.get("timezone"))
    server_rows = [s for s in answer.get("servers") or () if isinstance(s, Mapping)]
    standings = [b for b in answer.get("budgets") or () if isinstance(b, Mapping)]
    running = {str(s.get("server_name") or "") for s in server_rows}
    notices = culling_notices(answer.get("culling"), running, now, tz)
    notices += budget_notices(answer.get("notices") or (), standings, currency, tz)
    return HomeView(
        available=True,
        currency=currency,
        servers=servers(server_rows, currency),
        budgets=budgets(standings, currency, tz),
        notices=tuple(notices),
    )
