"""Idle shutdown in the platform service: activity reports in, keep/warn/stop out.

Each pass runs ``jupyterhub_idle_culler.cull_idle`` (its paginated, concurrency-bounded
walk of the hub's users and its DELETE calls) with ``arbiter`` as its cull arbiter; the
arbiter asks the pure policy (``culling.decide``) about each running server, using the
activity the server's extension reported, the warning and keep-alives recorded here, and
the profile's limits. Warnings and stops are written here, where the user's JupyterLab, the
hub's home page and the dashboard read them. Everything the passes need from the database
is loaded once per pass, so a pass over thousands of servers is a few queries.

The arbiter's stop verdicts are sent as DELETEs by the culler itself, so that the hub's
answer is the confirmation: 204 stopped (recorded with the pass), 202 still stopping
(recorded once a later pass's user list no longer shows it running), anything else not
stopped (left warned; the next pass asks again). A "Keep running" pressed after the pass
read its state is honoured, and one pressed while the DELETE is under way is refused. After
the hub was unreachable nothing is judged for ``grace_after_restart``: activity reaches the
hub late after an outage.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote

from mlfactory.hub.platform_config import PlatformConfig
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .culling import (
    Decision,
    Facts,
    Report,
    decide,
    duration,
    hours_not_run,
    limits_for,
    stop_outcome,
)
from .db import ActivityReport, CullingState, CullingStop, LedgerSession
from .hubapi import HubAPI
from .periods import iso_utc, parse_iso
from .store import Visibility

log = logging.getLogger("mlfactory.service")
A = ActivityReport.__table__
S = CullingState.__table__
X = CullingStop.__table__
L = LedgerSession.__table__
SAVINGS_CAP = 24 * 3600  # a stopped server is not assumed to have run more than a day


class KeepAliveRefused(Exception):
    """A "Keep running" press that cannot be honoured; ``str()`` says why."""


class Culler:
    def __init__(
        self,
        engine: Engine,
        config: PlatformConfig,
        *,
        hub: HubAPI | None = None,
        hub_url: str = "",
        token: str = "",
        clock: Callable[[], float] = time.time,
        page_size: int = 200,
        concurrency: int = 10,
    ) -> None:
        self.engine = engine
        self.config = config
        self.hub = hub
        self.hub_url = hub_url.rstrip("/")
        self.token = token
        self.clock = clock
        self.page_size = page_size
        self.concurrency = concurrency
        self.watching_since = clock()  # the hub restarts its managed services with it
        self.hub_lost = False  # a pass failed; the grace restarts when the hub answers again
        self.groups: dict[str, list[str]] = {}
        self.last_pass: dict[str, Any] = {}
        # stops the hub answered 202 to (still stopping), by (user, server name), with the
        # pass that asked: a later complete pass that does not list them running confirms them
        self.unconfirmed: dict[tuple[str, str], dict] = {}
        self._passes = 0
        self._stopped: list[dict] = []  # this pass's stops the hub answered 204 to
        self._deletes: list[asyncio.Future] = []
        # "Keep running" and a stop of the same server must not cross. A press records its
        # count here (``_kept``), so a stop decided on the state read before it is not sent;
        # a press while a stop is under way (``_stopping``, ``unconfirmed``) is refused. The
        # press runs in a worker thread: the lock is held for a few dict operations only.
        self._guard = threading.Lock()
        self._kept: dict[tuple[str, str], int] = {}
        self._stopping: set[tuple[str, str]] = set()

    # --- reports from the servers ------------------------------------------------------

    async def record_report(self, user: str, body: dict[str, Any]) -> None:
        await asyncio.to_thread(self._record_report, user, body, self.clock())

    def _record_report(self, user: str, body: dict[str, Any], now: float) -> None:
        report = report_from(body, now, self.config.culling.gpu_idle_percent)
        server_name = body["server_name"]
        with self.engine.begin() as c:
            where = (A.c.user == user, A.c.server_name == server_name)
            prev = c.execute(select(A.c.gpu_busy_at).where(*where)).scalar()
            busy_at = report.pop("gpu_busy_at") or prev
            values = {"at": now, "report": report, "gpu_busy_at": busy_at}
            if not c.execute(update(A).where(*where).values(**values)).rowcount:
                c.execute(A.insert().values(user=user, server_name=server_name, **values))

    # --- one pass ----------------------------------------------------------------------

    async def run_pass(self) -> dict[str, Any]:
        """One pass over every running server; never raises (the next pass retries)."""
        from jupyterhub_idle_culler import cull_idle

        if not self.config.culling.enabled:
            return {}
        complete, stops = False, []
        self._passes += 1
        self._deletes, self._stopped = [], []
        self._limit = asyncio.Semaphore(self.concurrency)
        try:
            if self.hub is not None:
                groups: dict[str, list[str]] = {}
                for g in await self.hub.groups():
                    for u in g.get("users") or ():
                        groups.setdefault(u, []).append(g["name"])
                self.groups = groups
                self._hub_answered()
            self._load()
            await cull_idle(
                url=self.hub_url,
                api_token=self.token,
                inactive_limit=self.config.culling.idle_timeout,
                logger=log,
                concurrency=self.concurrency,
                api_page_size=self.page_size,
                cull_arbiter=self.arbiter,
            )
            await asyncio.gather(*self._deletes)
            self._hub_answered()
            complete = True
        except Exception as e:  # the hub may be restarting: keep what we know, retry later
            log.warning("Idle-shutdown pass failed (%s); the next pass retries", e)
            self.hub_lost = True
            self.last_pass = {"ok": False, "error": str(e)[:200], "at": self.clock()}
            return self.last_pass
        finally:
            # the DELETEs already answered are stops whatever became of the rest of the pass
            await asyncio.gather(*self._deletes, return_exceptions=True)
            stops = self._settle(complete)
            try:
                await asyncio.to_thread(self._flush, complete, stops)
            finally:
                with self._guard:
                    self._stopping.difference_update((s["user"], s["server_name"]) for s in stops)
        self._counts["stopped"] = len(stops)
        asked = [s for s in self.unconfirmed.values() if s["asked_in"] == self._passes]
        self._counts["stopping"] = len(asked)
        self.last_pass = {"ok": True, "at": self.clock(), **self._counts}
        return self.last_pass

    def _hub_answered(self) -> None:
        if self.hub_lost:
            # servers' activity reached neither the hub nor us while it was away
            self.hub_lost = False
            self.watching_since = self.clock()
            log.info("The hub answers again: idle shutdown judges nothing for %s",
                     duration(self.config.culling.grace_after_restart))  # fmt: skip

    def _settle(self, complete: bool) -> list[dict]:
        """The stops to record now: those the hub answered 204 to in this pass, and after a
        complete pass the earlier 202s whose servers its user list no longer shows running
        (gone, still stopping, or running a later start; the arbiter dropped any it saw still
        running the start it stopped). This pass's 202s wait for the next complete pass."""
        stops, self._stopped = self._stopped, []
        if complete:
            for key, stop in list(self.unconfirmed.items()):
                if stop["asked_in"] < self._passes:
                    del self.unconfirmed[key]
                    stops.append({k: v for k, v in stop.items() if k != "asked_in"})
        return stops

    async def _stop(self, stop: dict) -> None:
        """Send the DELETE for one stop verdict and file it by the hub's answer."""
        key = (stop["user"], stop["server_name"])
        user, name = key
        with self._guard:
            loaded = self._states.get(key)
            if self._kept.get(key, 0) > (loaded.keepalives if loaded else 0):
                log.info("%s/%s: kept running at the user's request; not stopped", user, name)
                return
            self._stopping.add(key)
        log.warning("Stopping %s/%s because %s", user, name, stop["reason"])
        path = f"/users/{quote(user, safe='')}/"
        path += f"servers/{quote(name, safe='')}" if name else "server"
        req = HTTPRequest(
            self.hub_url + path,
            method="DELETE",
            headers={"Authorization": f"token {self.token}"},
            request_timeout=60,  # the hub waits up to its slow_stop_timeout (10 s) to answer
        )
        async with self._limit:
            try:
                resp = await AsyncHTTPClient().fetch(req, raise_error=False)
                code, why = resp.code, resp.reason
            except Exception as e:  # no answer at all: as good as a refusal
                code, why = 599, str(e)
        outcome = stop_outcome(code)
        if outcome == "stopped":
            self._stopped.append(stop)  # recorded with this pass's writes
        elif outcome == "stopping":
            self.unconfirmed[key] = {**stop, "asked_in": self._passes}
        else:
            with self._guard:
                self._stopping.discard(key)
            if outcome == "gone":
                log.info("%s/%s was stopped or removed before idle shutdown's DELETE", user, name)
            else:
                log.warning("The hub did not stop %s/%s (%s %s); it stays warned and the next "
                            "pass tries again", user, name, code, why)  # fmt: skip

    def _load(self) -> None:
        with self.engine.connect() as c:
            self._reports = {(r.user, r.server_name): r for r in c.execute(select(A))}
            self._states = {(r.user, r.server_name): r for r in c.execute(select(S))}
        self._writes: dict[tuple[str, str], dict] = {}
        self._seen: set[tuple[str, str]] = set()
        self._counts = {"servers": 0, "warned": 0, "stopped": 0}
        self._exempt = set(self.config.culling.exempt_users)
        self._grace = self.config.culling.grace_after_restart
        # one "now" for the whole pass, as jupyterhub-idle-culler's own walk has
        self._now = self.clock()
        self._limits: dict[tuple, Any] = {}

    def arbiter(self, *, server: dict, **_: Any) -> bool:
        """jupyterhub-idle-culler's ``cull_arbiter``, always False: a stop verdict is sent by
        ``_stop``. Synchronous on purpose: the culler wraps a coroutine in a task per server,
        a plain value in a finished future (a tenth of the pass's CPU over 5,000 servers)."""
        ledger = ((server.get("state") or {}).get("mlfactory") or {}).get("ledger") or {}
        user = ledger.get("user") or user_of(server)
        if user is None:
            return False
        if self.hub_lost:
            self._hub_answered()
        now = self._now
        name = server.get("name") or ""
        started = parse_iso(server["started"]) if server.get("started") else now
        asked = self.unconfirmed.get((user, name))
        if asked is not None and asked["started"] == started:
            # the hub answered 202, yet lists the same start running: that stop did not happen
            log.warning("The hub did not finish stopping %s/%s; judging it again", user, name)
            with self._guard:
                del self.unconfirmed[(user, name)]
                self._stopping.discard((user, name))
        groups = self.groups.get(user) or ledger.get("groups") or []
        profile = ledger.get("profile", "")
        # the same few (profile, groups) pairs recur over thousands of servers: one lookup each
        which = (user in self._exempt, profile, tuple(groups))
        limits = self._limits.get(which)
        if limits is None:
            limits = self._limits[which] = limits_for(self.config, user, profile, groups)
        state = self._states.get((user, name))
        if state is not None and state.started != started:
            state = None  # a new start of the server: yesterday's warning does not count
        row = self._reports.get((user, name))
        last = server.get("last_activity")
        facts = Facts(
            started=started,
            hub_last_activity=parse_iso(last) if last else None,
            report=report_of(row) if row is not None and row.at >= started else None,
            keepalive_at=state.keepalive_at if state else None,
            warned_at=state.warned_at if state and state.action != "keep" else None,
        )
        d = decide(facts, limits, now, self.watching_since, self._grace)
        self._counts["servers"] += 1
        self._remember(user, name, started, d, state, limits.idle_timeout)
        if d.action == "warn":
            self._counts["warned"] += 1
            if facts.warned_at is None:
                log.info("Warning %s/%s: will stop at %s because %s",
                         user, name, iso_utc(d.deadline), d.reason)  # fmt: skip
            return False
        if d.action != "stop":
            return False
        stop = {
            "user": user,
            "server_name": name,
            "started": started,
            "stopped_at": now,
            "reason": d.reason,
            "idle_seconds": d.idle_for,
            "price_per_hour": float(ledger.get("price_per_hour") or 0.0),
            "profile": ledger.get("profile", ""),
            "project": ledger.get("project", ""),
            "groups": list(groups),
        }
        # we send the DELETE (not jupyterhub-idle-culler) to read the hub's answer; up to
        # ``concurrency`` at a time, awaited before the pass writes
        self._deletes.append(asyncio.ensure_future(self._stop(stop)))
        return False

    def _remember(self, user, name, started, d: Decision, state, timeout: int) -> None:
        self._seen.add((user, name))
        if (
            d.action == "keep"
            and state is not None
            and (state.action, state.reason, state.idle_timeout) == ("keep", d.reason, timeout)
        ):
            return  # unchanged: most servers, most passes; skip the write
        self._writes[(user, name)] = {
            "started": started,
            "action": "keep" if d.action == "keep" else "warn",
            "reason": d.reason[:255],
            "warned_at": d.warned_at if d.action != "keep" else None,
            "deadline": d.deadline if d.action != "keep" else None,
            "keepalives": state.keepalives if state else 0,
            "keepalive_at": state.keepalive_at if state else None,
            "idle_timeout": timeout,
        }

    def _flush(self, complete: bool = False, stops: Iterable[dict] = ()) -> None:
        """Write the pass's warnings, and the ``stops`` the hub confirmed."""
        writes = getattr(self, "_writes", {})
        # after a complete pass, servers not seen (stopped, or stopped by this pass) lose
        # their row: a warning must not outlive its server
        seen = getattr(self, "_seen", set())
        gone = set(getattr(self, "_states", {})) - seen if complete else set()
        gone |= {(s["user"], s["server_name"]) for s in stops}
        known = set(getattr(self, "_states", {}))
        if complete:
            with self._guard:  # presses the load saw, or on servers no longer running
                for key, count in list(self._kept.items()):
                    st = getattr(self, "_states", {}).get(key)
                    if key not in seen or (st is not None and st.keepalives >= count):
                        del self._kept[key]
        rows = [
            {"b_user": user, "b_name": name, **values}
            for (user, name), values in writes.items()
            if (user, name) not in gone
        ]
        with self.engine.begin() as c:
            # one statement per kind, each executed for many rows (5,000 servers: 3 round
            # trips, not 10,000 single UPDATE-then-INSERTs)
            if gone:
                c.execute(
                    delete(S).where(
                        S.c.user == bindparam("b_user"), S.c.server_name == bindparam("b_name")
                    ),
                    [{"b_user": u, "b_name": n} for u, n in gone],
                )
            loaded = getattr(self, "_states", {})
            changed = [
                {**r, "b_seen": loaded[(r["b_user"], r["b_name"])].keepalives}
                for r in rows
                if (r["b_user"], r["b_name"]) in known
            ]
            if changed:
                # a "Keep running" pressed since the load counted one more: that row is the
                # user's, and this pass's verdict on it (read before the press) is not written
                c.execute(
                    update(S).where(
                        S.c.user == bindparam("b_user"),
                        S.c.server_name == bindparam("b_name"),
                        S.c.keepalives == bindparam("b_seen"),
                    ),
                    changed,
                )
            new = [_state_row(r) for r in rows if (r["b_user"], r["b_name"]) not in known]
            if new:
                try:
                    with c.begin_nested():
                        c.execute(S.insert(), new)
                except IntegrityError:  # a keep-alive wrote one since the load: row by row
                    for r in new:
                        where = (S.c.user == r["user"], S.c.server_name == r["server_name"])
                        values = {k: v for k, v in r.items() if k not in ("user", "server_name")}
                        if not c.execute(update(S).where(*where).values(**values)).rowcount:
                            c.execute(S.insert().values(**r))
        stops = list(stops)
        if stops:
            with self.engine.begin() as c:
                try:
                    with c.begin_nested():  # all of them in one statement, usually
                        c.execute(X.insert(), stops)
                except IntegrityError:
                    for stop in stops:  # one of them is recorded already: row by row
                        try:
                            with c.begin_nested():
                                c.execute(X.insert().values(**stop))
                        except IntegrityError:
                            pass  # the DELETE of an earlier pass had not finished: recorded then
        self._writes, self._seen = {}, set()

    # --- named servers nobody uses any more ---------------------------------------------

    async def remove_stale_named(self) -> list[str]:
        """Remove named servers stopped and unused for ``remove_named_after`` (files stay)."""
        after = self.config.culling.remove_named_after
        if not after or self.hub is None:
            return []
        now, removed = self.clock(), []
        async for user in self.hub.users(include_stopped=True):
            for name, server in (user.get("servers") or {}).items():
                if not name or server.get("ready") or server.get("pending"):
                    continue
                last = server.get("last_activity") or server.get("started")
                if last and now - parse_iso(last) >= after:
                    await self.hub.stop_server(user["name"], name, remove=True)
                    removed.append(f"{user['name']}/{name}")
        if removed:
            log.info("Removed named servers unused for %s: %s", duration(after), removed)
        return removed

    # --- what users and admins see ------------------------------------------------------

    async def status(self, user: str, server_name: str | None) -> dict[str, Any]:
        return await asyncio.to_thread(self._status, user, server_name)

    def _status(self, user: str, server_name: str | None) -> dict[str, Any]:
        limit = self.config.culling.keep_alive_limit
        # clients ask often enough to see a warning with most of its time left
        poll = min(60, max(2, self.config.culling.warn_before // 5))
        with self.engine.connect() as c:
            q = select(S).where(S.c.user == user)
            if server_name is not None:
                q = q.where(S.c.server_name == server_name)
            states = list(c.execute(q))
            stops = list(
                c.execute(
                    select(X).where(X.c.user == user).order_by(X.c.stopped_at.desc()).limit(20)
                )
            )

        def last_stop(name: str) -> dict | None:
            s = next((s for s in stops if s.server_name == name), None)
            return {"stopped_at": iso_utc(s.stopped_at), "reason": s.reason} if s else None

        def one(name: str, st) -> dict[str, Any]:
            return {
                "server_name": name,
                "action": st.action if st else "keep",
                "reason": st.reason if st else "",
                "deadline": iso_utc(st.deadline) if st and st.action == "warn" else None,
                "keep_alive_left": max(0, limit - (st.keepalives if st else 0)),
                "idle_timeout": st.idle_timeout if st else self.config.culling.idle_timeout,
                "last_stop": last_stop(name),
                "poll_seconds": poll,
            }

        # the last pass keeps a row for each running server and drops the others' rows
        by_name = {s.server_name: s for s in states}
        if server_name is not None:
            return one(server_name, by_name.get(server_name))
        return {
            "servers": [one(n, by_name[n]) for n in sorted(by_name)],
            "stops": [
                {
                    "server_name": s.server_name,
                    "stopped_at": iso_utc(s.stopped_at),
                    "reason": s.reason,
                }  # fmt: skip
                for s in stops
            ],
        }

    async def keepalive(self, user: str, server_name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._keepalive, user, server_name, self.clock())

    def _keepalive(self, user: str, server_name: str, now: float) -> dict[str, Any]:
        limit = self.config.culling.keep_alive_limit
        key = (user, server_name)
        marked = False
        try:
            with self.engine.begin() as c:
                st = c.execute(
                    select(S).where(S.c.user == user, S.c.server_name == server_name)
                ).first()
                if st is None:
                    raise KeepAliveRefused("This server has no idle-shutdown warning to put off.")
                if st.action == "warn" and "maximum age" in st.reason:
                    raise KeepAliveRefused(
                        "This server reached its maximum age; save your work, it will stop."
                    )
                if st.keepalives >= limit:
                    raise KeepAliveRefused(
                        f"'Keep running' was used {limit} times since this server started; "
                        "start it again after it stops, or ask an admin for an exemption."
                    )
                with self._guard:
                    if key in self._stopping or key in self.unconfirmed:
                        raise KeepAliveRefused(
                            "Idle shutdown is stopping this server now; start it again from "
                            "the hub's home page once it has stopped."
                        )
                    # a stop the running pass decided on the state read before this is void
                    self._kept[key] = st.keepalives + 1
                    marked = True
                c.execute(
                    update(S)
                    .where(S.c.user == user, S.c.server_name == server_name)
                    .values(
                        keepalives=st.keepalives + 1,
                        keepalive_at=now,
                        action="keep",
                        warned_at=None,
                        deadline=None,
                        reason="kept running at the user's request",
                    )
                )
        except BaseException:
            if marked:  # not stored: the press did not happen
                with self._guard:
                    self._kept.pop(key, None)
            raise
        log.info("%s/%s: kept running (%d of %d)", user, server_name, st.keepalives + 1, limit)
        return {"deadline": None, "keep_alive_left": max(0, limit - st.keepalives - 1)}

    async def stops(self, t0: float, t1: float, visible: Visibility) -> dict[str, Any]:
        return await asyncio.to_thread(self._stops_report, t0, t1, visible, self.clock())

    def _stops_report(self, t0: float, t1: float, v: Visibility, now: float) -> dict[str, Any]:
        q = select(X).where(X.c.stopped_at >= t0, X.c.stopped_at < t1)
        if not v.everyone:
            q = q.where(X.c.user.in_(sorted(v.users)) if v.users else X.c.id < 0)
        with self.engine.connect() as c:
            rows = list(c.execute(q.order_by(X.c.stopped_at.desc()).limit(5000)))
            nxt = _next_starts(c, rows)
        out, teams = [], {}
        for r in rows:
            groups = [g for g in (r.groups or []) if v.everyone or g in v.groups] or [""]
            if not v.everyone and r.user not in v.users and not set(r.groups or []) & v.groups:
                continue
            hours = hours_not_run(r.stopped_at, nxt.get(r.id), now, SAVINGS_CAP)
            saved = round(hours * r.price_per_hour, 4)
            out.append(
                {
                    "user": r.user,
                    "server_name": r.server_name,
                    "stopped_at": iso_utc(r.stopped_at),
                    "reason": r.reason,
                    "idle_seconds": round(r.idle_seconds),
                    "profile": r.profile,
                    "project": r.project,
                    "price_per_hour": r.price_per_hour,
                    "hours_not_run": round(hours, 4),
                    "saved": saved,
                }
            )
            month = iso_utc(r.stopped_at)[:7]
            for g in groups:
                t = teams.setdefault((g, month), {"stops": 0, "saved": 0.0})
                t["stops"] += 1
                t["saved"] = round(t["saved"] + saved, 4)
        return {
            "stops": out,
            "by_team_month": [{"group": g, "month": m, **t} for (g, m), t in sorted(teams.items())],
        }


def _next_starts(c, rows: Iterable[Any]) -> dict[int, float]:
    """For each stop, when that server next started (one query per stop; reports only)."""
    out = {}
    for r in rows:
        t = c.execute(
            select(func.min(L.c.started)).where(
                L.c.user == r.user, L.c.server_name == r.server_name, L.c.started > r.stopped_at
            )
        ).scalar()
        if t is not None:
            out[r.id] = t
    return out


def report_from(body: dict[str, Any], now: float, gpu_idle_percent: float) -> dict[str, Any]:
    """A server's raw activity report → the few facts the policy reads (validated)."""

    def times(items: Any) -> list[float]:
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("last_activity"), str):
                try:
                    out.append(parse_iso(item["last_activity"]))
                except ValueError:
                    continue
        return out

    kernels = body.get("kernels") if isinstance(body.get("kernels"), list) else []
    busy = sum(1 for k in kernels if isinstance(k, dict) and k.get("execution_state") == "busy")
    gpu = body.get("gpu_util")
    if isinstance(gpu, list) and all(isinstance(u, int | float) for u in gpu):
        gpu_util = [float(u) for u in gpu][:64]
    else:
        gpu_util = None
    last_save = None
    if isinstance(body.get("last_save"), str):
        try:
            last_save = parse_iso(body["last_save"])
        except ValueError:
            last_save = None
    kt, tt = times(kernels), times(body.get("terminals"))
    return {
        "busy_kernels": busy,
        # the server's clock may run ahead: never let a report claim activity after now
        "last_kernel_activity": min(max(kt), now) if kt else None,
        "last_terminal_activity": min(max(tt), now) if tt else None,
        "last_save": min(last_save, now) if last_save else None,
        "gpu_util": gpu_util,
        "gpu_busy_at": now if gpu_util and max(gpu_util) >= gpu_idle_percent else None,
    }


def report_of(row: Any) -> Report:
    r = row.report or {}
    gpu = r.get("gpu_util")
    return Report(
        at=row.at,
        busy_kernels=int(r.get("busy_kernels") or 0),
        last_kernel_activity=r.get("last_kernel_activity"),
        last_terminal_activity=r.get("last_terminal_activity"),
        last_save=r.get("last_save"),
        gpu_util=tuple(gpu) if gpu is not None else None,
        gpu_busy_at=row.gpu_busy_at,
    )


def _state_row(row: dict) -> dict:
    """A ``_flush`` parameter row (keys ``b_user``/``b_name``) as a ``culling_state`` row."""
    out = {k: v for k, v in row.items() if k not in ("b_user", "b_name")}
    return {"user": row["b_user"], "server_name": row["b_name"], **out}


def user_of(server: dict) -> str | None:
    """The user a server model belongs to: the spawner's ledger says; else its URL."""
    ledger = ((server.get("state") or {}).get("mlfactory") or {}).get("ledger") or {}
    if ledger.get("user"):
        return ledger["user"]
    url = server.get("url") or ""
    if "/user/" not in url:
        return None
    return unquote(url.split("/user/", 1)[1].split("/", 1)[0]) or None
