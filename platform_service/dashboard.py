"""The cost dashboard page: spend over time per team and project, top users, running servers
and their burn, budgets with progress bars, recent alerts, and who used which data store.

What a viewer sees follows their scopes, exactly as the REST API does: ``usage:read``
(possibly filtered to groups or users) bounds the usage sections, ``budgets:read`` bounds
the budgets and alerts, and a viewer with neither sees only their own spend and budgets.
Charts are inline SVG drawn on the server (``charts``); the page runs no script, and its
Content-Security-Policy forbids any.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup
from tornado import web

from . import charts
from .base import UserHandler
from .budgets import Scope
from .periods import day_starts, iso_day, parse_iso
from .permissions import can_see_scope
from .reports import daily_by, top_n
from .scopes import BUDGETS_READ, USAGE_READ
from .store import Visibility

TEMPLATES = Path(__file__).with_name("templates")
MAX_SERIES = 8  # more lines or colours than this is noise
TOP_USERS = 10
MAX_BUDGETS = 40
MAX_ALERTS = 25
MAX_DATA_ROWS = 50
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)


@functools.cache
def _templates() -> Any:
    """The page's jinja2 environment, built at the first page: a service nobody opens the
    dashboard of (a storm of spawns, a headless deployment) never holds jinja2."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every name on the page is user-controlled
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = charts.money
    return env


def _sees_any(v: Visibility) -> bool:
    return v.everyone or bool(v.users or v.groups)


def _audience(v: Visibility, me: str) -> str:
    if v.everyone:
        return "everyone"
    parts = []
    if v.groups:
        parts.append("teams " + ", ".join(sorted(v.groups)))
    if v.users:
        parts.append("users " + ", ".join(sorted(v.users)))
    return " and ".join(parts) or f"you ({me})"


class DashboardHandler(UserHandler):
    login_redirect = True

    @web.authenticated
    async def get(self) -> None:
        t0, t1, d0, d1 = self.date_range()  # a bad date answers 400 JSON before any work
        acc = self.accountant
        me = self.model["name"]
        tz = acc.tz
        now = self.now()
        unit = acc.currency

        usage_v = self.visibility(USAGE_READ)
        budgets_v = self.visibility(BUDGETS_READ)
        wide_usage, wide_budgets = _sees_any(usage_v), _sees_any(budgets_v)
        # Without the usage scope a user still sees their own sessions, and nobody else's.
        v = usage_v if wide_usage else Visibility(users=frozenset([me]))

        days = day_starts(t0, t1, tz)
        labels = [iso_day(d, tz) for d in days]

        def reports() -> tuple[dict[str, list[float]], dict[str, list[float]]]:
            by_project = daily_by(acc.store, "project", t0, t1, now, v, days)
            # a filtered lead's team chart shows their teams only, never every group that
            # their members' sessions are tagged with
            keys = None if v.everyone else v.groups
            by_group = daily_by(acc.store, "group", t0, t1, now, v, days, keys=keys)
            return by_project, by_group

        (by_project, by_group), users, running = await asyncio.gather(
            asyncio.to_thread(reports),
            acc.usage("user", t0, t1, v),
            acc.running(v),
        )
        by_project = {(k or "(no project)"): vals for k, vals in by_project.items()}
        total = sum(sum(vals) for vals in by_project.values())

        budgets, alerts = await self._budgets_and_alerts(budgets_v, wide_budgets, t0, t1)
        culler = self.settings.get("culler")
        stops = await culler.stops(t0, t1, v) if culler is not None else None
        saved_chart = ""
        if stops is not None:
            saved: dict[str, float] = {}
            for row in stops["by_team_month"]:
                team = row["group"] or "(no team)"
                saved[team] = saved.get(team, 0.0) + row["saved"]
            saved_chart = charts.hbar_chart(
                sorted(saved.items(), key=lambda kv: -kv[1])[:TOP_USERS],
                title=f"Money idle shutdown saved per team, {d0} to {d1}",
                chart_id="chart-saved",
                unit=unit,
                empty="No server was stopped for idleness in this period.",
            )
            for s_ in stops["stops"]:
                s_["when"] = _local(parse_iso(s_["stopped_at"]), tz)

        data_usage = await self._data_usage(v, tz)

        def short_day(d: str) -> str:
            return d[5:]  # MM-DD: the form above the charts says which year

        project_chart = charts.stacked_bars(
            top_n(by_project, MAX_SERIES),
            labels,
            title=f"Daily spend per project, {d0} to {d1}",
            chart_id="chart-projects",
            unit=unit,
            tick_label=short_day,
        )
        show_teams = v.everyone or bool(v.groups)  # a user-filtered reader has no team
        group_chart = (
            charts.line_chart(
                dict(list(by_group.items())[:MAX_SERIES]),
                labels,
                title=f"Daily spend per team, {d0} to {d1}",
                chart_id="chart-teams",
                unit=unit,
                tick_label=short_day,
            )
            if show_teams
            else ""
        )
        users_chart = charts.hbar_chart(
            [(r["key"], r["cost"]) for r in users[:TOP_USERS]],
            title=f"Top users by spend, {d0} to {d1}",
            chart_id="chart-users",
            unit=unit,
            empty="No spend in this period.",
        )
        burn = sum(s["price_per_hour"] for s in running)
        burn_chart = charts.hbar_chart(
            [(_server_label(s), s["price_per_hour"]) for s in running[:20]],
            title="Hourly burn of running servers",
            chart_id="chart-burn",
            unit=unit,
            suffix="/h",
            empty="No servers are running.",
        )
        for i, b in enumerate(budgets):
            b["bar"] = Markup(  # noqa: S704 - charts escapes every label it draws
                charts.progress_bar(
                    b["spent"],
                    b["amount"],
                    label=f"{b['kind']} {b['name']}",
                    chart_id=f"budget-{i}",
                    unit=unit,
                    thresholds=b["thresholds"],
                )
            )
            b["level"] = charts.level(b["fraction"], b["thresholds"])
            b["resets"] = _local(parse_iso(b["resets_at"]), tz, "%Y-%m-%d")

        context: dict[str, Any] = {
            "me": me,
            "admin": bool(self.model.get("admin")),
            "currency": unit,
            "from_day": d0,
            "to_day": d1,
            "audience": _audience(v, me),
            "wide_usage": wide_usage,
            "show_teams": show_teams,
            "wide_budgets": wide_budgets,
            "total": total,
            "burn": burn,
            "running": [
                {**s, "label": _server_label(s), "since": _local(parse_iso(s["started"]), tz)}
                for s in running
            ],
            "budgets": budgets[:MAX_BUDGETS],
            "budgets_left_out": max(0, len(budgets) - MAX_BUDGETS),
            "over": sum(1 for b in budgets if b["level"] != "ok"),
            "alerts": alerts[:MAX_ALERTS],
            "stops": (stops or {}).get("stops", [])[:MAX_ALERTS],
            "stops_saved": sum(r["saved"] for r in (stops or {}).get("by_team_month", [])),
            "show_stops": stops is not None,
            "data_usage": data_usage,
            "saved_chart": Markup(saved_chart),  # noqa: S704 - escaped in charts
            "project_chart": Markup(project_chart),  # noqa: S704 - escaped in charts
            "group_chart": Markup(group_chart),  # noqa: S704
            "users_chart": Markup(users_chart),  # noqa: S704
            "burn_chart": Markup(burn_chart),  # noqa: S704
            "top_users": users[:TOP_USERS],
            "hub_home": f"{self.hub_auth.hub_prefix.rstrip('/')}/home",
            "api_base": self.settings.get("service_prefix", "/services/mlfactory/").rstrip("/"),
            "tz": str(tz),
        }
        page = _templates().get_template("dashboard.html").render(**context)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(page)

    async def _data_usage(self, v: Visibility, tz) -> list[dict[str, Any]] | None:
        """Who used which data store (the access audit), as far as ``v`` sees; None when
        the platform manages no data stores."""
        broker = self.settings.get("data_broker")
        if broker is None:
            return None
        users = None
        if not v.everyone:
            members = await self.accountant.members() if v.groups else {}
            users = set(v.users) | {u for u, gs in members.items() if v.groups & set(gs)}
        rows = await broker.usage(users=users)
        for r in rows:
            r["last"] = _local(r["last_issued"], tz)
        return rows[:MAX_DATA_ROWS]

    async def _budgets_and_alerts(
        self, v: Visibility, wide: bool, t0: float, t1: float
    ) -> tuple[list[dict], list[dict]]:
        """Budgets (most spent first) and alerts the viewer may see, as plain dicts."""
        acc = self.accountant
        tz = acc.tz
        if wide:
            members = await acc.members()
            standings = await acc.budget_list()
            budgets = [s.as_json() for s in standings if can_see_scope(v, s.rule.scope, members)]
            alerts = [
                {**a, "when": _local(a["fired_at"], tz)}
                for a in await acc.alerts(t0, t1)
                if can_see_scope(v, Scope(a["kind"], a["name"]), members)
            ]
        else:
            mine = await acc.me(self.model["name"], await self.my_groups())
            budgets = mine["budgets"]
            alerts = [{**n, "when": _local(parse_iso(n["fired_at"]), tz)} for n in mine["notices"]]
        budgets.sort(key=lambda b: (-b["fraction"], b["kind"], b["name"]))
        return budgets, alerts


def _server_label(s: dict) -> str:
    return f"{s['user']}/{s['server_name']}" if s["server_name"] else s["user"]


def _local(t: float, tz, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(t, tz).strftime(fmt)


class DashboardRedirect(web.RedirectHandler):
    """The service's root (``/services/mlfactory/``) is the dashboard."""

    def initialize(self) -> None:  # type: ignore[override]
        super().initialize(self.settings["service_prefix"].rstrip("/") + "/dashboard")


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/?", DashboardRedirect),
    (r"/dashboard", DashboardHandler),
]
