"""What people read and set about money: their own standing (``/api/me``), budgets, usage
reports (JSON or CSV), the running servers and the alerts that fired; each bounded by the
caller's scopes (``permissions``)."""

from __future__ import annotations

import csv
import io
import re

from mlfactory.hub.platform_config import Budget
from pydantic import ValidationError
from tornado import web

from .base import APIError, UserHandler
from .budgets import DIMENSIONS, KINDS, BudgetBodyError, Rule, Scope, budget_input
from .periods import iso_utc
from .permissions import (
    BUDGETS_READ,
    BUDGETS_WRITE,
    USAGE_READ,
    applies_to,
    can_see_scope,
    can_write_scope,
    visible_scopes,
)
from .store import Visibility


class MeHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        me = self.model["name"]
        data = await self.accountant.me(me, await self.my_groups())
        self.write_json(data)


class BudgetsHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(BUDGETS_READ)
        members = await self.accountant.members()
        standings = await self.accountant.budget_list()
        rows = [s.as_json() for s in standings if can_see_scope(v, s.rule.scope, members)]
        self.write_json({"currency": self.accountant.currency, "budgets": rows})


class BudgetHandler(UserHandler):
    async def _scope(self, kind: str, name: str, v: Visibility) -> Scope:
        if kind not in KINDS:
            raise APIError(404, f"No budget kind {kind!r}; use one of {', '.join(KINDS)}.")
        scope = Scope(kind, name)  # type: ignore[arg-type]
        members = await self.accountant.members()
        if not can_see_scope(v, scope, members):
            raise APIError(404, f"No budget for {scope}.")
        return scope

    @web.authenticated
    async def get(self, kind: str, name: str) -> None:
        scope = await self._scope(kind, name, self.require(BUDGETS_READ))
        standing = await self.accountant.standing_of(scope)
        if standing is None:
            raise APIError(404, f"No budget for {scope}.")
        self.write_json(standing.as_json())

    @web.authenticated
    async def put(self, kind: str, name: str) -> None:
        v = self.require(BUDGETS_WRITE)
        scope = await self._scope(kind, name, self.visibility(BUDGETS_READ))
        me, my_groups = self.model["name"], await self.my_groups()
        members = await self.accountant.members()
        if not can_write_scope(v, scope, me, members):
            if applies_to(scope, me, my_groups):
                raise APIError(403, f"You cannot change the budget of {scope}: it applies to you.")
            raise APIError(404, f"No budget for {scope}.")
        if kind == "project" and name not in {p.name for p in self.accountant.config.projects}:
            raise APIError(404, f"No project {name!r} in the platform config.")
        if kind in ("group", "project") and not _slug_ok(name):
            raise APIError(400, "name: not a valid group or project name", field="name")
        try:
            budget = Budget.model_validate(budget_input(self.json_body(), scope))
        except BudgetBodyError as e:
            raise APIError(400, str(e), field=e.field) from None
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "body"
            raise APIError(400, f"{field}: {err['msg']}", field=field) from None
        rule = Rule.from_budget(scope, budget, source="api")
        created = scope not in self.accountant.stored
        await self.accountant.put_rule(rule, me)
        standing = await self.accountant.standing_of(scope)
        self.write_json(standing.as_json(), status=201 if created else 200)

    @web.authenticated
    async def delete(self, kind: str, name: str) -> None:
        v = self.require(BUDGETS_WRITE)
        scope = await self._scope(kind, name, self.visibility(BUDGETS_READ))
        if not can_write_scope(v, scope, self.model["name"], await self.accountant.members()):
            raise APIError(404, f"No budget for {scope}.")
        if not await self.accountant.delete_rule(scope):
            raise APIError(404, f"No budget set through the API for {scope}.")
        self.set_status(204)
        self.finish()


class UsageHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(USAGE_READ)
        by = self.get_argument("by", "user")
        if by not in DIMENSIONS:
            raise APIError(400, f"by: use one of {', '.join(DIMENSIONS)}", field="by")
        fmt = self.get_argument("format", "json")
        if fmt not in ("json", "csv"):
            raise APIError(400, "format: use json or csv", field="format")
        t0, t1, d0, d1 = self.date_range()
        rows = await self.accountant.usage(by, t0, t1, v)
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow([by, "cost", "hours", "currency"])
            for r in rows:
                writer.writerow(
                    [_csv_safe(str(r["key"])), r["cost"], r["hours"], self.accountant.currency]
                )
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header(
                "Content-Disposition", f'attachment; filename="usage-{by}-{d0}-{d1}.csv"'
            )
            self.finish(out.getvalue())
            return
        self.write_json(
            {"by": by, "from": d0, "to": d1, "currency": self.accountant.currency, "rows": rows}
        )


class RunningHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(USAGE_READ)
        self.write_json(
            {"currency": self.accountant.currency, "servers": await self.accountant.running(v)}
        )


class AlertsHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(BUDGETS_READ)
        t0, t1, _d0, _d1 = self.date_range()
        scopes = None if v.everyone else visible_scopes(v, await self.accountant.members())
        rows = await self.accountant.alerts(t0, t1, scopes)
        self.write_json(
            {
                "alerts": [
                    {
                        **r,
                        "fired_at": iso_utc(r["fired_at"]),
                        "period_start": iso_utc(r["period_start"]),
                    }
                    for r in rows
                ]
            }
        )


def _slug_ok(name: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", name))


def _csv_safe(text: str) -> str:
    # a spreadsheet would run a cell starting with these as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/api/me", MeHandler),
    (r"/api/budgets", BudgetsHandler),
    (r"/api/budgets/([a-z]+)/([^/]+)", BudgetHandler),
    (r"/api/usage", UsageHandler),
    (r"/api/servers", RunningHandler),
    (r"/api/alerts", AlertsHandler),
]
