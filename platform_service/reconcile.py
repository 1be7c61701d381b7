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

The container backend's servers are seen through the engine: ``container_sighting`` reads
one container (the engine's list or inspect dict) with its labels and, where there is one,
its journal record. A container mlfactory labelled is found even when the hub and the
journal both forgot it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mlfactory.spawner.container_labels import KEY, session_from_labels
from mlfactory.spawner.journal import Record, Session, session_fields

# The journal's key rule: a key read from a label names files beside the journal's records
# (orphan marks), so one that the journal would refuse is never accepted from a label.
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{8,80}")
# Docker's states of a container that holds its resources; "created" is a spawn in progress.
_RUNNING_STATES = frozenset({"running", "paused", "restarting"})
_STARTING_STATES = frozenset({"created", "configured", "initialized"})  # Podman adds the last two


@dataclass(frozen=True)
class Sighting(Session):
    """One running server as the hub or the backend reports it: the session (the journal's
    shape, ``Session``) and what that view says of it."""

    running: bool = True
    stopped_at: float | None = None  # the backend's record of when it stopped
    source: str = "hub"
    starting: bool = False  # running, but not accepting connections yet
    never_ready: bool = False  # stopped without ever accepting connections: costs nothing
    container: str = ""  # the engine's container id, for a container backend's server


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


def container_sighting(
    container: Mapping[str, Any], record: Record | None = None
) -> Sighting | None:
    """The engine's view of one container: ``container`` is the engine's list entry
    (``GET /containers/json``) or inspect dict (``GET /containers/{id}/json``); ``record``
    the journal's record with the same key, if any. None for a container mlfactory did not
    label, or whose labels are malformed: it is left alone.

    The session comes from the labels, so a container nobody else remembers is billed from
    its label's start. The engine says whether it runs; the record, when there is one, says
    whether it ever became ready (without one, a running container counts as ready: it is
    billed). A stopped container ended at the record's stop time, else at the engine's.
    """
    session = session_from_labels(_labels(container))
    if session is None or not _KEY_RE.fullmatch(session.key):
        return None
    state = container.get("State")
    status = (state.get("Status") if isinstance(state, Mapping) else state) or ""
    status = status.lower()
    created = status in _STARTING_STATES
    running = status in _RUNNING_STATES or created
    ready = record.ready if record is not None else None
    stopped_at = None
    if not running:
        stopped_at = record.stopped_at if record is not None else None
        if stopped_at is None and isinstance(state, Mapping):
            stopped_at = _engine_time(state.get("FinishedAt"))
    fields = session_fields(session)
    if record is not None and not session.groups:
        fields["groups"] = record.groups
    return Sighting(
        **fields,
        running=running,
        stopped_at=stopped_at,
        source="engine",
        starting=created or (running and ready is False),
        never_ready=not running and ready is False,
        container=str(container.get("Id") or (record.container if record else "")),
    )


def _labels(container: Mapping[str, Any]) -> Mapping[str, str]:
    """A container's labels: at the top of a list entry, under Config in an inspect dict."""
    return container.get("Labels") or (container.get("Config") or {}).get("Labels") or {}


def _engine_time(value: Any) -> float | None:
    """Epoch seconds of an engine timestamp (RFC 3339, nanoseconds); None for the engine's
    zero time ("0001-01-01T00:00:00Z": never) or anything unreadable."""
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def engine_sightings(
    containers: Iterable[Mapping[str, Any]], records: Mapping[str, Record]
) -> list[Sighting]:
    """The container backend's view: one sighting per labelled container (a running one wins
    over a stopped one with the same key), plus a stopped sighting for each journal record of
    a container the engine no longer has (it was removed). Call it only with a complete
    answer from the engine: a record missing from it is taken as stopped."""
    out: dict[str, Sighting] = {}
    for c in containers:
        s = container_sighting(c, records.get(_labels(c).get(KEY, "")))
        if s is not None and (s.key not in out or (s.running and not out[s.key].running)):
            out[s.key] = s
    for key, r in records.items():
        if r.container and key not in out:
            out[key] = replace(backend_sighting(r, running=False), container=r.container)
    return list(out.values())


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
    unknown: Collection[str] = (),
) -> OrphanPlan:
    """Which of the backend's live servers are orphans, and which to stop now.

    Call it only with a complete answer from the hub: ``hub_keys`` are the keys of every
    server the hub lists as running or starting. ``marked`` maps each known orphan to when
    it was first found. An orphan the hub lists again, or that ended, is cleared; one still
    unlisted ``grace`` seconds after it was found is stopped (a spawn the hub has not shown
    yet, or a stop in progress, resolves itself well within the grace). A mark in
    ``unknown`` (a container while the engine does not answer) is kept as it is.
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
    result.cleared = [key for key in marked if key not in live and key not in unknown]
    return result
