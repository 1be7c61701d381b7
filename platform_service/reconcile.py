"""Reconcile the ledger with the hub's and the backend's views of running servers. Pure.

A server counts as running when the hub *or* the backend says so: the hub can think a
server stopped while its process still runs (jupyterhub #4574), and after a hub restart the
hub may not list a server yet. A ledger session is keyed by the spawner's session key, so
seeing the same server again never opens a second row; a session neither side reports any
more is closed at the backend's recorded stop time, else when it was last seen running.

A server that is still starting (the hub's spawn is pending, or the backend has not seen it
accept connections) never opens or confirms a session: only the budget gate admits a spawn,
and a reconcile that saw the spawn before the gate refused it must not charge it. A session
whose server never became ready costs nothing.

An *orphan* is a server process the backend runs and the hub does not list (a hub that died
mid-spawn, or lost track of a server): nobody can stop it through the hub, so after a grace
period the service stops it itself (``orphans``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from mlfactory.spawner.journal import Record, Session, session_fields


@dataclass(frozen=True)
class Sighting(Session):
    """One running server as the hub or the backend reports it: the session (the journal's
    shape, ``Session``) and what that view says of it."""

    running: bool = True
    stopped_at: float | None = None  # the backend's record of when it stopped
    source: str = "hub"
    starting: bool = False  # running, but not accepting connections yet
    never_ready: bool = False  # stopped without ever accepting connections: costs nothing


def backend_sighting(record: Record, running: bool) -> Sighting:
    """The backend's view of a journal record; ``running``: its process is still alive.
    A server that has not accepted connections yet is starting; one that stopped without
    ever doing so costs nothing (records older than the ``ready`` flag are neither)."""
    return Sighting(
        **session_fields(record),
        running=running,
        stopped_at=record.stopped_at,
        source="backend",
        starting=running and record.ready is False,
        never_ready=not running and record.ready is False,
    )


@dataclass(frozen=True)
class OpenSession:
    key: str
    started: float
    last_seen: float


@dataclass
class Plan:
    open: list[Sighting] = field(default_factory=list)  # new rows
    seen: list[str] = field(default_factory=list)  # keys confirmed running now
    close: list[tuple[str, float, str]] = field(default_factory=list)  # (key, ended, reason)


def merge(hub: Iterable[Sighting], backend: Iterable[Sighting]) -> dict[str, Sighting]:
    """One sighting per key; a live backend record wins over a stopped one and over the hub
    (it knows the real process), but keeps the hub's groups when it has none. A server is
    starting only while every view that reports it running says so."""
    out: dict[str, Sighting] = {s.key: s for s in hub}
    for b in backend:
        h = out.get(b.key)
        if h is None or b.running or not h.running:
            if h is not None and not b.groups:
                b = replace(b, groups=h.groups)
            if h is not None and h.running and b.running and b.starting and not h.starting:
                b = replace(b, starting=False)
            out[b.key] = b
        elif b.stopped_at is not None:
            # the hub still lists it but the process is gone: believe the backend
            out[b.key] = replace(h, running=False, stopped_at=b.stopped_at)
    return out


def plan(
    open_sessions: Iterable[OpenSession],
    sightings: Mapping[str, Sighting],
    known_keys: set[str],
    now: float,
    start_grace: float = 600,
) -> Plan:
    """What to write to the ledger: open new sessions, mark running ones seen, close the rest.

    ``known_keys`` holds every key already in the ledger (open or closed), so a closed
    session that a stale view still reports is never reopened. A session the gate opened
    that nobody has confirmed yet is left alone for ``start_grace`` seconds: its server may
    still be starting (the spawner reports a failed start itself).

    A starting server neither opens a session nor confirms one; it only keeps the gate's
    session open. So a spawn the gate refuses is never charged, whatever the order of the
    refusal and a reconcile that saw the spawn pending, and a session confirmed by nobody
    but a starting server is closed at its start: a server that never became ready costs
    nothing.
    """
    result = Plan()
    open_by_key = {o.key: o for o in open_sessions}
    for key, s in sightings.items():
        if s.running and not s.starting:
            if key in open_by_key:
                result.seen.append(key)
            elif key not in known_keys:
                result.open.append(s)
    for key, o in open_by_key.items():
        s = sightings.get(key)
        if s is not None and s.running:
            continue
        unconfirmed = o.last_seen <= o.started
        if s is None and unconfirmed and now - o.started < start_grace:
            continue
        if s is not None and s.never_ready:
            ended, reason = o.started, "never ready"
        elif s is not None and s.stopped_at is not None:
            ended, reason = max(o.started, min(s.stopped_at, now)), "stopped"
        else:
            ended, reason = max(o.started, min(o.last_seen, now)), "not running"
        result.close.append((key, ended, reason))
    return result


@dataclass
class OrphanPlan:
    found: list[str] = field(default_factory=list)  # new orphans: their grace starts now
    cleared: list[str] = field(default_factory=list)  # no longer orphans
    stop: list[str] = field(default_factory=list)  # grace over: stop their processes


def orphans(
    backend: Iterable[Sighting],
    hub_keys: Collection[str],
    marked: Mapping[str, float],
    now: float,
    grace: float,
) -> OrphanPlan:
    """Which of the backend's live servers are orphans, and which to stop now.

    Call it only with a complete answer from the hub: ``hub_keys`` are the keys of every
    server the hub lists as running or starting. ``marked`` maps each known orphan to when
    it was first found. An orphan the hub lists again, or that ended, is cleared; one still
    unlisted ``grace`` seconds after it was found is stopped (a spawn the hub has not shown
    yet, or a stop in progress, resolves itself well within the grace).
    """
    result = OrphanPlan()
    live = set()
    for s in backend:
        if not s.running or s.key in hub_keys:
            continue
        live.add(s.key)
        since = marked.get(s.key)
        if since is None:
            result.found.append(s.key)
        elif now - since >= grace:
            result.stop.append(s.key)
    result.cleared = [key for key in marked if key not in live]
    return result
