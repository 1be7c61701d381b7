"""Budget rules: which budgets a server charges, the spawn gate, alerts and stops. Pure.

Money is in the platform's currency; times are UTC epoch seconds passed in by the caller.
Spend is what servers have cost so far in the budget's period. The gate also counts a
*commitment* for each running server: at least ``minimum_run`` of its price, so two spawns
racing for the last of a budget cannot both pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from mlfactory.hub.platform_config import Budget, PlatformConfig, parse_duration

from .periods import Period, iso_utc, readable_utc

Kind = Literal["user", "group", "project"]
KINDS: tuple[Kind, ...] = ("user", "group", "project")
# What usage is reported by (``/api/usage?by=``, ``mlfactory budgets usage --by``): the budget
# kinds, then the profile, the local day and the single server.
DIMENSIONS: tuple[str, ...] = (*KINDS, "profile", "day", "server")
Enforcement = Literal["alert", "block", "stop"]


@dataclass(frozen=True, order=True)
class Scope:
    kind: Kind
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True)
class Rule:
    """One budget as it applies now: from the config file or set through the API."""

    scope: Scope
    amount: float
    period: Period = "monthly"
    thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)
    enforcement: Enforcement = "block"
    grace: int = 900
    notify: tuple[str, ...] = ()
    source: Literal["config", "api", "default"] = "config"

    @property
    def hard(self) -> bool:
        return self.enforcement in ("block", "stop")

    @classmethod
    def from_budget(cls, scope: Scope, budget: Budget, source: str = "config") -> Rule:
        return cls(
            scope=scope,
            amount=budget.amount,
            period=budget.period,
            thresholds=budget.thresholds,
            enforcement=budget.enforcement,
            grace=budget.grace,
            notify=budget.notify,
            source=source,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Charge:
    """A server session as far as money is concerned."""

    started: float
    ended: float | None  # None while it runs
    price_per_hour: float


def cost_in_window(charge: Charge, start: float, end: float, now: float) -> float:
    """What ``charge`` cost inside ``[start, end)``, counting a running server up to ``now``."""
    stop = min(charge.ended if charge.ended is not None else now, end)
    seconds = stop - max(charge.started, start)
    return charge.price_per_hour * seconds / 3600 if seconds > 0 else 0.0


def commitment(charge: Charge, start: float, end: float, now: float, minimum_run: int) -> float:
    """Spend plus, for a running server, what is left of its first ``minimum_run``."""
    spent = cost_in_window(charge, start, end, now)
    if charge.ended is not None:
        return spent
    run_until = min(max(now, charge.started + minimum_run), end)
    return spent + charge.price_per_hour * max(0.0, run_until - max(now, start)) / 3600


# --- a budget as the API takes it ---------------------------------------------------------

# What a GET answers besides the budget itself: ignored on PUT, so a GET body can go back.
STANDING_ONLY = ("source", "spent", "fraction", "period_start", "resets_at")


class BudgetBodyError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def budget_input(body: Mapping[str, Any], scope: Scope) -> dict[str, Any]:
    """A PUT body → the fields of ``Budget``. Takes the config's names (``grace``) and what a
    GET answers (``grace_seconds``, ``kind``/``name`` if they match the URL, and the
    standing's read-only fields, which are ignored); anything else is left for ``Budget``
    to refuse."""
    data = dict(body)
    for key, mine in (("kind", scope.kind), ("name", scope.name)):
        if key in data and data.pop(key) != mine:
            raise BudgetBodyError(key, f"{key}: this is the budget of {scope}; PUT to its URL")
    for key in STANDING_ONLY:
        data.pop(key, None)
    if "grace_seconds" in data:
        seconds = data.pop("grace_seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
            raise BudgetBodyError("grace_seconds", "grace_seconds: use a whole number of seconds")
        if "grace" in data:
            try:
                same = parse_duration(data["grace"]) == seconds
            except ValueError:
                same = False
            if not same:
                raise BudgetBodyError(
                    "grace", "grace: differs from grace_seconds; send one of the two"
                )
        data["grace"] = seconds
    return data


# --- which budgets apply ------------------------------------------------------------------


def config_rules(config: PlatformConfig) -> dict[Scope, Rule]:
    """Group and project budgets written in the platform config."""
    rules = {}
    for g in config.groups:
        if g.budget is not None:
            rules[Scope("group", g.name)] = Rule.from_budget(Scope("group", g.name), g.budget)
    for p in config.projects:
        if p.budget is not None:
            rules[Scope("project", p.name)] = Rule.from_budget(Scope("project", p.name), p.budget)
    return rules


def effective_rule(
    scope: Scope,
    stored: Mapping[Scope, Rule],
    config: PlatformConfig,
    from_config: Mapping[Scope, Rule] | None = None,
) -> Rule | None:
    """The API's rule for ``scope``, else the config's (``from_config``: ``config_rules``
    computed once), else (users) the default budget."""
    if scope in stored:
        return stored[scope]
    rule = (config_rules(config) if from_config is None else from_config).get(scope)
    if rule is None and scope.kind == "user" and config.default_budget is not None:
        rule = Rule.from_budget(scope, config.default_budget, source="default")
    return rule


def scopes_of(user: str, groups: Iterable[str], project: str) -> list[Scope]:
    """The budgets a server of ``user`` in ``groups`` charged to ``project`` counts against."""
    out = [Scope("user", user)]
    out += [Scope("group", g) for g in sorted(set(groups))]
    if project:
        out.append(Scope("project", project))
    return out


# --- the gate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """A rule with where it stands in its current period."""

    rule: Rule
    period_start: float
    period_end: float
    spent: float
    committed: float = 0.0

    @property
    def fraction(self) -> float:
        if self.rule.amount <= 0:
            return 1.0 if self.spent > 0 else 0.0
        return self.spent / self.rule.amount

    def as_json(self, tz: ZoneInfo | None = None) -> dict:
        return {
            "kind": self.rule.scope.kind,
            "name": self.rule.scope.name,
            "amount": self.rule.amount,
            "period": self.rule.period,
            "enforcement": self.rule.enforcement,
            "thresholds": list(self.rule.thresholds),
            "grace_seconds": self.rule.grace,
            "notify": list(self.rule.notify),
            "source": self.rule.source,
            "spent": round(self.spent, 4),
            "fraction": round(self.fraction, 4),
            "period_start": iso_utc(self.period_start),
            "resets_at": iso_utc(self.period_end),
        }


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    message: str = ""
    standing: Standing | None = None
    warnings: tuple[str, ...] = field(default=())


def gate(
    price_per_hour: float,
    standings: Sequence[Standing],
    *,
    minimum_run: int,
    currency: str,
) -> Verdict:
    """May a server at ``price_per_hour`` start now, given the budgets it would charge?

    Refused when a hard budget (block/stop) is already spent, or when its commitments plus
    ``minimum_run`` at this price would cross it. A free server is never refused.
    """
    need = price_per_hour * minimum_run / 3600
    warnings = []
    for s in sorted(standings, key=lambda s: s.rule.scope):
        if price_per_hour <= 0:
            break
        over = s.committed + need > s.rule.amount + 1e-9
        if not over:
            continue
        text = _refusal(s, need, minimum_run, currency)
        if s.rule.hard:
            return Verdict(False, text, s)
        warnings.append(text)
    return Verdict(True, warnings=tuple(warnings))


def _refusal(s: Standing, need: float, minimum_run: int, currency: str) -> str:
    left = max(0.0, s.rule.amount - s.committed)
    hours = minimum_run / 3600
    run = f"{hours:g} hour" + ("" if hours == 1 else "s")
    resets = readable_utc(s.period_end)
    return (
        f"The {s.rule.period} budget of {s.rule.scope} is {_money(s.spent, currency)} spent "
        f"of {_money(s.rule.amount, currency)}; {_money(left, currency)} is left, and "
        f"{run} of this server costs {_money(need, currency)}. It resets at {resets}. "
        "Choose a smaller profile or ask your admin to raise the budget."
    )


def _money(x: float, currency: str) -> str:
    return f"{x:,.2f} {currency}"


# --- alerts and stops ---------------------------------------------------------------------


def crossed(standing: Standing, fired: Iterable[float]) -> list[float]:
    """Thresholds reached in this period that have not fired yet (lowest first)."""
    done = set(fired)
    return [
        t
        for t in standing.rule.thresholds
        if t not in done and standing.spent >= t * standing.rule.amount - 1e-9
    ]


def alert_message(standing: Standing, threshold: float, currency: str) -> str:
    rule = standing.rule
    text = (
        f"Budget alert: {rule.scope} has spent {_money(standing.spent, currency)} of its "
        f"{rule.period} budget of {_money(rule.amount, currency)} ({threshold:.0%} reached)."
    )
    if threshold >= 1 and rule.enforcement == "block":
        text += f" New servers are refused until {readable_utc(standing.period_end)}."
    elif threshold >= 1 and rule.enforcement == "stop":
        text += f" Running servers will be stopped in {rule.grace // 60} minutes; save your work."
    return text


StopAction = Literal["none", "warn", "stop"]


def stop_action(standing: Standing, warned_at: float | None, now: float) -> StopAction:
    """For a ``stop`` budget at or over 100%: warn first, stop after the grace period."""
    if standing.rule.enforcement != "stop" or standing.spent < standing.rule.amount - 1e-9:
        return "none"
    if warned_at is None or warned_at < standing.period_start:
        return "warn"
    return "stop" if now >= warned_at + standing.rule.grace else "none"
