"""The accountant: answers the budget gate, keeps the ledger in step with what runs, and
checks budgets (alerts once per threshold and period; warns, then stops, for ``stop``).

It wires the pure rules (``budgets``, ``reconcile``) to the store, the hub API, the local
backend's journal, the container engine (``engine_view``) and the notifier. It also stops
orphans: server processes the journal shows running, and labelled containers the engine
runs, that the hub does not know, which nobody could stop through the hub. The
clock is injected, so tests move time instead of sleeping. Database work runs in a worker
thread; gate decisions are serialised, by a lock in this process and by the database across
processes, so concurrent spawns cannot both take the last of a budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from mlfactory.hub.platform_config import PlatformConfig
from mlfactory.spawner.journal import Journal, Record, alive, session_fields, stop_process
from sqlalchemy.engine import Connection

from .alerts import Notifier
from .budgets import (
    Charge,
    Rule,
    Scope,
    Standing,
    Verdict,
    alert_message,
    commitment,
    config_rules,
    cost_in_window,
    crossed,
    effective_rule,
    gate,
    scopes_of,
    stop_action,
)
from .engine_view import EngineDown, EngineView
from .hubapi import HubAPI, sighting
from .periods import day_starts, iso_day, iso_utc, period_bounds
from .reconcile import Sighting, backend_sighting, engine_sightings, merge, orphans, plan
from .store import Store, Visibility

log = logging.getLogger("mlfactory.service")
# The PostgreSQL advisory lock every gate transaction holds ("mlfg"): any number key that
# no other part of the service uses.
GATE_LOCK_KEY = 0x6D6C6667
# Seconds the hub's group membership is reused for permission checks (the auth cache's bound)
MEMBERS_MAX_AGE = 2.0


@dataclass(frozen=True)
class GateRequest:
    key: str
    user: str
    server_name: str
    project: str
    profile: str
    price_per_hour: float
    groups: tuple[str, ...] = ()
    resources: dict[str, Any] = field(default_factory=dict)


class Accountant:
    def __init__(
        self,
        store: Store,
        config: PlatformConfig,
        *,
        hub: HubAPI | None = None,
        journal: Journal | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        engine: EngineView | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.hub = hub
        self.journal = journal
        self.engine = engine  # None: no container backend (``engine_view.engine_view``)
        self.engine_problem: str | None = None  # the current outage, logged once
        self._engine_keys: set[str] = set()  # running in the engine at its last answer
        self.notifier = notifier or Notifier(config.alerts, config.platform.name)
        self.clock = clock
        self.tz = ZoneInfo(config.accounting.timezone)
        self._config_rules = config_rules(config)  # the config does not change while we run
        store.tz = self.tz  # the daily totals are kept in the platform's zone
        self.currency = config.platform.currency
        self.lock = asyncio.Lock()
        # gate calls waiting for the lock, decided together by the first to get it
        self._waiting: list[tuple[list[GateRequest], asyncio.Future]] = []
        self.stored: dict[Scope, Rule] = {}
        self.user_groups: dict[str, list[str]] = {}  # from the hub's last answer
        self.last_tick: float | None = None
        self._members: dict[str, list[str]] = {}
        self._members_at = float("-inf")
        self.orphans: dict[str, float] = {}  # key → when it was found running unknown to the hub

    async def start(self) -> None:
        if await asyncio.to_thread(self.store.sync_daily):
            log.info("Rebuilt the daily spend totals (time zone %s)", self.tz.key)
        await self.reload_rules()

    async def reload_rules(self) -> None:
        self.stored = await asyncio.to_thread(self.store.stored_rules)

    def rule(self, scope: Scope) -> Rule | None:
        return effective_rule(scope, self.stored, self.config, self._config_rules)

    def all_rules(self, users: Iterable[str] = ()) -> dict[Scope, Rule]:
        """Every group and project budget, and the user budgets of ``users`` and the API's."""
        rules = dict(self._config_rules)
        for user in users:
            rule = self.rule(Scope("user", user))
            if rule is not None:
                rules[rule.scope] = rule
        rules.update(self.stored)
        return rules

    # --- standing ---------------------------------------------------------------------

    def standings(
        self, rules: Iterable[Rule], now: float, minimum_run: int = 0, conn: Any = None
    ) -> list[Standing]:
        """Where each rule stands in its current period (one query per period; ``conn``:
        the caller's transaction)."""
        rules = list(rules)
        by_period: dict[str, dict[str, list[Rule]]] = {}
        for r in rules:
            by_period.setdefault(r.period, {}).setdefault(r.scope.kind, []).append(r)
        out = []
        for period, kinds in by_period.items():
            start, end = period_bounds(period, now, self.tz)
            wanted = {
                k: ([r.scope.name for r in batch] if len(batch) < 500 else None)
                for k, batch in kinds.items()
            }
            spend = self.store.spend_kinds(wanted, start, end, now, minimum_run, conn)
            for kind, batch in kinds.items():
                for r in batch:
                    spent, committed = spend[kind].get(r.scope.name, (0.0, 0.0))
                    out.append(Standing(r, start, end, spent, committed))
        return out

    # --- gate -------------------------------------------------------------------------

    async def gate(self, req: GateRequest) -> Verdict:
        return (await self.gate_many([req]))[0]

    async def gate_many(self, reqs: list[GateRequest]) -> list[Verdict]:
        """Decide ``reqs`` one after the other, in order, each seeing the sessions the ones
        before it opened: a batch is the same as that many single calls, in one transaction.

        Calls that arrive while a decision is under way wait together, and the first of them
        to get the lock decides all of them as one batch, in the order they came: one read
        of the budgets for them all, not one per call.

        Logs, per call, how long its batch took to decide and how long it waited for the
        batch before it (a storm's latency is mostly that wait: decisions are serial)."""
        asked = time.perf_counter()
        mine: asyncio.Future[tuple[list[Verdict], float, float, int]]
        mine = asyncio.get_running_loop().create_future()
        self._waiting.append((reqs, mine))
        async with self.lock:
            if not mine.done():  # nobody took ours with theirs: decide every waiting call
                with contextlib.suppress(Exception):  # set on ``mine`` too, raised below
                    await self._decide_waiting(mine)
        verdicts, began, took, together = await mine
        log.info(
            "Gates: %d decided in %.1f ms after %.1f ms waiting for the gates before them "
            "(a batch of %d)",
            len(reqs),
            1000 * took,
            1000 * (began - asked),
            together,
        )
        for req, verdict in zip(reqs, verdicts, strict=True):
            self._log_verdict(req, verdict)
        return verdicts

    async def _decide_waiting(self, mine: asyncio.Future) -> None:
        calls, self._waiting = self._waiting, []
        batch = [req for reqs, _ in calls for req in reqs]
        began = time.perf_counter()
        try:
            verdicts = await asyncio.to_thread(self._gate_many, batch, self.clock())
        except BaseException as e:  # every waiting call gets the failure, none waits forever
            for _, future in calls:
                if isinstance(e, Exception):
                    future.set_exception(e)
                elif future is mine:
                    future.cancel()
                else:  # the task deciding for them was cancelled: the service is stopping
                    future.set_exception(RuntimeError("the budget gate was interrupted"))
            raise
        took = time.perf_counter() - began
        at = 0
        for reqs, future in calls:
            future.set_result((verdicts[at : at + len(reqs)], began, took, len(batch)))
            at += len(reqs)

    def _gate_many(self, reqs: list[GateRequest], now: float) -> list[Verdict]:
        # One transaction for the whole batch (a round trip to PostgreSQL per query
        # otherwise); it need not wait on an fsync: a lost admission is found again by the
        # next reconcile from the hub's and the backend's views.
        with self.store.transaction(durable=False, serial=GATE_LOCK_KEY) as conn:
            verdicts, admitted = self._decide(conn, reqs, now)
            self.store._insert_many(conn, admitted, now)
        return verdicts

    def _decide(
        self, conn: Connection, reqs: list[GateRequest], now: float
    ) -> tuple[list[Verdict], list[Sighting]]:
        """Each request in order, as that many single gates would decide it, from one read
        of the batch's budgets: a storm's batch reads every running session of a class's
        group once, not once per spawn. Each admission is added to the standings of its
        budgets (``commitment``, the same rule the read applies to a running session), so
        the requests after it see it."""
        minimum_run = self.config.accounting.minimum_run
        known = self.store.known_keys([r.key for r in reqs], conn)
        scopes = [scopes_of(r.user, r.groups, r.project) for r in reqs]
        rules = {s: rule for ss in scopes for s in ss if (rule := self.rule(s))}
        standing = {s.rule.scope: s for s in self.standings(rules.values(), now, minimum_run, conn)}
        verdicts: list[Verdict] = []
        admitted: list[Sighting] = []
        for req, its_scopes in zip(reqs, scopes, strict=True):
            if req.key in known:
                verdicts.append(Verdict(True))  # a retried request: already admitted
                continue
            mine = [standing[rules[s].scope] for s in its_scopes if s in rules]
            verdict = gate(
                req.price_per_hour, mine, minimum_run=minimum_run, currency=self.currency
            )
            verdicts.append(verdict)
            if not verdict.allowed:
                continue
            known.add(req.key)
            admitted.append(Sighting(**session_fields(req), started=now, source="gate"))
            charge = Charge(now, None, req.price_per_hour)
            for s in mine:
                standing[s.rule.scope] = replace(
                    s,
                    spent=s.spent + cost_in_window(charge, s.period_start, s.period_end, now),
                    committed=s.committed
                    + commitment(charge, s.period_start, s.period_end, now, minimum_run),
                )
        return verdicts, admitted

    @staticmethod
    def _log_verdict(req: GateRequest, verdict: Verdict) -> None:
        log.info(
            "Gate %s for %s/%s at %.4f/h: %s",
            req.key,
            req.user,
            req.server_name,
            req.price_per_hour,
            "allowed" if verdict.allowed else verdict.message,
        )
        return verdict

    async def end(
        self, key: str, when: float | None, reason: str, never_ready: bool = False
    ) -> bool:
        """Close a session now (the spawner's notice at a stop, exit or failed start), so a
        stopped server stops counting at once. One that never became ready costs nothing."""
        now = self.clock()
        ended = min(when, now) if when is not None else now
        if never_ready:
            ended = 0.0  # the store closes a session no earlier than its start
        return await asyncio.to_thread(self.store.end_session, key, ended, reason)

    # --- the periodic tick ------------------------------------------------------------

    async def tick(self) -> None:
        """Reconcile with the hub and the backend, then check budgets."""
        await self.reconcile()
        await self.evaluate()
        await asyncio.to_thread(self.store.checkpoint)
        self.last_tick = self.clock()

    async def reconcile(self) -> None:
        hub_view: list[Sighting] = []
        hub_answered = True
        if self.hub is not None:
            try:
                hub_view, groups = await self.hub.sightings()
                self.user_groups.update(groups)
            except Exception as e:  # a restarting hub: charge what the backend shows
                log.warning("The hub did not answer (%s); reconciling with the backend only", e)
                hub_answered = False
        backend_view, unknown = await self._backend_view()
        now = self.clock()
        sightings = merge(hub_view, backend_view)
        opened = await asyncio.to_thread(self.store.open_view)
        known = await asyncio.to_thread(self.store.known_keys, sightings.keys())
        p = plan(opened, sightings, known, now)
        if not hub_answered:
            # without the hub's view a session it alone reports would look stopped
            p.close = [c for c in p.close if c[0] in sightings]
        if unknown:
            # a container the engine cannot show us may still run: close nothing of it
            p.close = [c for c in p.close if c[0] not in unknown]
        await asyncio.to_thread(self.store.apply, p, now)
        if self.journal is not None:
            # the ledger has closed (or never had) the sessions of stopped records
            for s in backend_view:
                if not s.running:
                    await asyncio.to_thread(self.journal.forget, s.key)
        if p.open or p.close:
            log.info("Ledger: %d opened, %d closed", len(p.open), len(p.close))
        if hub_answered and self.hub is not None and self.journal is not None:
            await self._stop_orphans(backend_view, hub_view, now, unknown)

    async def _backend_view(self) -> tuple[list[Sighting], set[str]]:
        """The backends' view: the journal's processes, and the engine's labelled containers
        with their journal records; and the keys whose state is unknown (containers, while
        the engine does not answer). Both backends may have used this data directory."""
        view, containers = await asyncio.to_thread(self._journal_view)
        if self.engine is None:
            # no engine to ask: only a record's own stop is known
            stopped = [r for r in containers.values() if r.stopped_at is not None]
            return view + [backend_sighting(r, False) for r in stopped], set()
        try:
            listed = await asyncio.to_thread(self.engine.containers)
        except Exception as e:  # any failure leaves the containers' state unknown
            self._engine_down(str(e) if isinstance(e, EngineDown) else f"{self.engine.url}: {e!r}")
            stopped = [r for r in containers.values() if r.stopped_at is not None]
            unknown = self._engine_keys | {k for k, r in containers.items() if r.stopped_at is None}
            return view + [backend_sighting(r, False) for r in stopped], unknown
        if self.engine_problem is not None:
            level = logging.WARNING if self.engine.required else logging.INFO
            log.log(level, "The container engine at %s answers again", self.engine.url)
            self.engine_problem = None
        seen = engine_sightings(listed, containers)
        self._engine_keys = {s.key for s in seen if s.running}
        return view + seen, set()

    def _engine_down(self, problem: str) -> None:
        """Say once per outage that the engine does not answer (a warning where containers
        are the backend; with ``auto`` the machine may have no engine at all)."""
        assert self.engine is not None
        if self.engine_problem is None:
            if self.engine.required or self._engine_keys:
                log.warning(
                    "%s; billing on the hub's view and the journal, stopping no container", problem
                )
            else:
                log.info("%s; watching local server processes only", problem)
        self.engine_problem = problem

    async def _stop_orphans(
        self,
        backend_view: list[Sighting],
        hub_view: list[Sighting],
        now: float,
        unknown: Collection[str] = (),
    ) -> None:
        """Find the servers the journal or the engine shows running and the hub does not
        list; stop those still unlisted after ``accounting.orphan_grace``, with the end reason
        "orphaned". The marks of containers the engine cannot show us now are kept."""
        assert self.journal is not None
        marks = await asyncio.to_thread(self.journal.orphan_marks)
        grace = self.config.accounting.orphan_grace
        op = orphans(backend_view, {s.key for s in hub_view}, marks, now, grace, unknown)
        for key in op.cleared:
            await asyncio.to_thread(self.journal.clear_orphan, key)
            marks.pop(key, None)
        by_key = {s.key: s for s in backend_view}
        for key in op.found:
            await asyncio.to_thread(self.journal.mark_orphan, key, now)
            marks[key] = now
            s = by_key[key]
            log.warning(
                "Server %s/%s (session %s) runs without the hub knowing it; it is stopped at "
                "%s unless the hub lists it again",
                s.user,
                s.server_name,
                key,
                iso_utc(now + grace),
            )
        for key in op.stop:
            if await self._stop_orphan(by_key[key], now):
                marks.pop(key, None)
        self.orphans = marks

    async def _stop_orphan(self, s: Sighting, now: float) -> bool:
        """Stop one orphan's process and close its session; False to try again next tick."""
        assert self.hub is not None and self.journal is not None
        try:
            # Ask about this user alone before a stop that cannot be undone: a list of every
            # user is the view most likely to be incomplete.
            model = await self.hub.user(s.user)
        except Exception as e:
            log.warning("Cannot confirm that %s is an orphan (%s); retrying next tick", s.key, e)
            return False
        listed = {
            seen.key
            for name, server in ((model or {}).get("servers") or {}).items()
            if (seen := sighting(model, name, server)) is not None
        }
        if s.key in listed:
            await asyncio.to_thread(self.journal.clear_orphan, s.key)
            return True
        record = await asyncio.to_thread(self.journal.read, s.key)
        if s.container:
            # stopped and removed through the engine; its named volume (the home) stays
            if self.engine is None or not await asyncio.to_thread(self.engine.remove, s.container):
                log.error(
                    "Cannot stop orphaned server %s/%s (container %s)",
                    s.user,
                    s.server_name,
                    s.container[:12],
                )
                return False
            never_ready = record.ready is False if record is not None else s.starting
        else:
            if record is not None and not await asyncio.to_thread(stop_process, record):
                log.error(
                    "Cannot stop orphaned server %s/%s (pid %s)", s.user, s.server_name, record.pid
                )
                return False
            never_ready = record is not None and record.ready is False
        await asyncio.to_thread(self.journal.mark_stopped, s.key, now)
        await self.end(s.key, now, "orphaned", never_ready=never_ready)
        await asyncio.to_thread(self.journal.clear_orphan, s.key)
        log.warning(
            "Stopped orphaned server %s/%s (session %s): the hub did not know it for %ds",
            s.user,
            s.server_name,
            s.key,
            self.config.accounting.orphan_grace,
        )
        return True

    def _journal_view(self) -> tuple[list[Sighting], dict[str, Record]]:
        """The journal's server processes, and its container records by key (the engine,
        not a pid, says whether those run)."""
        records = self.journal.records() if self.journal is not None else []
        processes = [backend_sighting(r, alive(r)) for r in records if not r.container]
        return processes, {r.key: r for r in records if r.container}

    async def evaluate(self) -> None:
        now = self.clock()
        standings = await asyncio.to_thread(self._all_standings, now)
        period_starts = {s.rule.scope: s.period_start for s in standings}
        fired = await asyncio.to_thread(self.store.fired, period_starts)
        stops = await asyncio.to_thread(self.store.stop_rows, period_starts)
        for s in standings:
            for threshold in crossed(s, fired.get(s.rule.scope, ())):
                await self._fire(s, threshold, now)
            row = stops.get(s.rule.scope)
            action = stop_action(s, row["warned_at"] if row else None, now)
            if action == "warn":
                await asyncio.to_thread(
                    self.store.record_warning, s.rule.scope, s.period_start, now
                )
            elif action == "stop" and row is not None and row["stopped_at"] is None:
                await self._stop_servers(s, now)

    def _all_standings(self, now: float) -> list[Standing]:
        users = set()
        default = self.config.default_budget
        if default is not None:
            start, end = period_bounds(default.period, now, self.tz)
            users = set(self.store.spend("user", start, end, now))
        return self.standings(self.all_rules(users).values(), now)

    async def _fire(self, s: Standing, threshold: float, now: float) -> None:
        alert = {
            "kind": s.rule.scope.kind,
            "name": s.rule.scope.name,
            "period_start": s.period_start,
            "threshold": threshold,
            "spent": s.spent,
            "amount": s.rule.amount,
            "enforcement": s.rule.enforcement,
            "fired_at": now,
            "message": alert_message(s, threshold, self.currency),
            "delivery": {},
        }
        alert_id = await asyncio.to_thread(self.store.record_alert, alert)
        if alert_id is None:
            return
        alert["id"] = alert_id
        log.warning("%s", alert["message"])
        delivery = await self.notifier.deliver(alert, s.rule.notify)
        await asyncio.to_thread(self.store.set_delivery, alert_id, delivery)

    async def _stop_servers(self, s: Standing, now: float) -> None:
        running = await asyncio.to_thread(self.store.running_for, s.rule.scope)
        names = []
        for row in running:
            names.append(f"{row['user']}/{row['server_name']}")
            if self.hub is not None:
                try:
                    await self.hub.stop_server(row["user"], row["server_name"])
                except Exception as e:  # the next tick retries
                    log.error("Cannot stop %s/%s: %s", row["user"], row["server_name"], e)
                    return
        log.warning("Budget %s is spent: stopped %s", s.rule.scope, ", ".join(names) or "nothing")
        await asyncio.to_thread(self.store.record_stop, s.rule.scope, s.period_start, now, names)

    # --- what a user sees -------------------------------------------------------------

    def user_scopes(self, user: str, groups: Iterable[str], now: float) -> list[Scope]:
        """The user's own budget, their groups' and the projects they charged this month."""
        start, end = period_bounds("monthly", now, self.tz)
        projects = self.store.projects_of(user, start, now)
        scopes = scopes_of(user, groups, "")
        return scopes + [Scope("project", p) for p in projects if p]

    def user_standing(self, user: str, groups: Iterable[str], now: float) -> dict[str, Any]:
        scopes = self.user_scopes(user, groups, now)
        rules = [r for sc in scopes if (r := self.rule(sc))]
        standings = self.standings(rules, now)
        starts = {s.rule.scope: s.period_start for s in standings}
        fired = self.store.alerts(min(starts.values(), default=now), now + 1, starts.keys())
        notices = [
            {
                "id": a["id"],
                "kind": a["kind"],
                "name": a["name"],
                "threshold": a["threshold"],
                "message": a["message"],
                "fired_at": a["fired_at"],
            }
            for a in fired
            if starts.get(Scope(a["kind"], a["name"])) == a["period_start"]
        ]
        return {
            "standings": standings,
            "notices": notices,
        }

    # --- what the API serves (each runs its queries in a worker thread) ----------------

    async def groups_of(self, user: str, hint: Iterable[str] | None = None) -> list[str]:
        if hint is not None:
            return list(hint)
        if user not in self.user_groups and self.hub is not None:
            model = await self.hub.user(user)
            self.user_groups[user] = list((model or {}).get("groups") or [])
        return self.user_groups.get(user, [])

    async def members(self) -> dict[str, list[str]]:
        """Each user's current groups, from the hub. They decide what a team lead may see and
        change, so a group change applies within MEMBERS_MAX_AGE seconds, like a role change."""
        now = self.clock()
        max_age = min(self.config.accounting.interval, MEMBERS_MAX_AGE)
        if self.hub is not None and now - self._members_at >= max_age:
            try:
                groups = await self.hub.groups()
            except Exception as e:  # keep the last answer; the hub may be restarting
                log.warning("Cannot list the hub's groups: %s", e)
            else:
                members: dict[str, list[str]] = {}
                for g in groups:
                    for u in g.get("users") or ():
                        members.setdefault(u, []).append(g["name"])
                self._members = members
                self._members_at = now
        return self._members

    async def me(self, user: str, groups: list[str]) -> dict[str, Any]:
        now = self.clock()

        def work() -> dict[str, Any]:
            standing = self.user_standing(user, groups, now)
            running = self.store.running(Visibility(users=frozenset([user])))
            return {
                "user": user,
                "currency": self.currency,
                "budgets": [s.as_json() for s in standing["standings"]],
                "notices": [{**n, "fired_at": iso_utc(n["fired_at"])} for n in standing["notices"]],
                "servers": [self._server_json(r, now) for r in running],
            }

        return await asyncio.to_thread(work)

    async def budget_list(self) -> list[Standing]:
        now = self.clock()
        return await asyncio.to_thread(self._all_standings, now)

    async def standing_of(self, scope: Scope) -> Standing | None:
        rule = self.rule(scope)
        if rule is None:
            return None
        now = self.clock()
        (standing,) = await asyncio.to_thread(self.standings, [rule], now)
        return standing

    async def put_rule(self, rule: Rule, by: str) -> None:
        await asyncio.to_thread(self.store.put_rule, rule, self.clock(), by)
        await self.reload_rules()

    async def delete_rule(self, scope: Scope) -> bool:
        deleted = await asyncio.to_thread(self.store.delete_rule, scope)
        await self.reload_rules()
        return deleted

    async def usage(self, by: str, t0: float, t1: float, v: Visibility) -> list[dict]:
        now = self.clock()
        days = day_starts(t0, t1, self.tz) if by == "day" else ()
        rows = await asyncio.to_thread(self.store.usage, by, t0, t1, now, v, days)
        if by == "day":  # every day of the range, in order, zero where nothing ran
            found = {r["key"]: r for r in rows}
            return [
                {**found.get(i, {"cost": 0.0, "hours": 0.0}), "key": iso_day(t, self.tz)}
                for i, t in enumerate(days)
            ]
        if by == "group" and not v.everyone:
            # a session also counts for its user's other groups: show the reader's only
            rows = [r for r in rows if r["key"] in v.groups]
        return rows

    async def running(self, v: Visibility) -> list[dict]:
        now = self.clock()

        def work() -> list[dict]:  # shaped in the worker too: 1,000 rows are ~5 ms of Python
            return [self._server_json(r, now) for r in self.store.running(v)]

        return await asyncio.to_thread(work)

    def _server_json(self, row: dict, now: float) -> dict[str, Any]:
        out = _server_json(row, now)
        found = self.orphans.get(row["key"])
        out["orphaned"] = found is not None
        if found is not None:  # what an admin needs to know: it is stopped then
            out["stops_at"] = iso_utc(found + self.config.accounting.orphan_grace)
        return out

    async def alerts(self, t0: float, t1: float, scopes: list[Scope] | None = None) -> list[dict]:
        return await asyncio.to_thread(self.store.alerts, t0, t1, scopes)


def _server_json(row: dict, now: float) -> dict[str, Any]:
    hours = max(0.0, now - row["started"]) / 3600
    return {
        "user": row["user"],
        "server_name": row["server_name"],
        "project": row["project"],
        "profile": row["profile"],
        "resources": row["resources"],
        "price_per_hour": row["price_per_hour"],
        "started": iso_utc(row["started"]),
        "hours": round(hours, 4),
        "cost_so_far": round(hours * row["price_per_hour"], 4),
    }
