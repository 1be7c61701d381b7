"""Reconcile the ledger with the hub's and the backend's views of running servers. Pure.

A server counts as running when the hub *or* the backend says so: the hub can think a
server stopped while its process still runs (jupyterhub #4574), and after a hub restart the
hub may not list a server yet. A ledger session is keyed by the spawner's session key, so
seeing the same server again never opens a second row; a session neither side reports any
more is closed at the backend's recorded stop time, else when it was last seen running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sighting:
    """One running server as the hub or the backend reports it."""

    key: str  # the spawner's session key
    user: str
    server_name: str
    started: float
    price_per_hour: float
    project: str = ""
    profile: str = ""
    resources: Mapping[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    running: bool = True
    stopped_at: float | None = None  # the backend's record of when it stopped
    source: str = "hub"


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
    (it knows the real process), but keeps the hub's groups when it has none."""
    out: dict[str, Sighting] = {s.key: s for s in hub}
    for b in backend:
        h = out.get(b.key)
        if h is None or b.running or not h.running:
            if h is not None and not b.groups:
                b = Sighting(**{**b.__dict__, "groups": h.groups})
            out[b.key] = b
        elif b.stopped_at is not None:
            # the hub still lists it but the process is gone: believe the backend
            out[b.key] = Sighting(**{**h.__dict__, "running": False, "stopped_at": b.stopped_at})
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
    """
    result = Plan()
    open_by_key = {o.key: o for o in open_sessions}
    for key, s in sightings.items():
        if s.running:
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
        if s is not None and s.stopped_at is not None:
            ended, reason = max(o.started, min(s.stopped_at, now)), "stopped"
        else:
            ended, reason = max(o.started, min(o.last_seen, now)), "not running"
        result.close.append((key, ended, reason))
    return result
