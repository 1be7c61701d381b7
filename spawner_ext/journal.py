"""The local backend's record of running servers, for the platform service's ledger.

One JSON file per server session in ``$MLFACTORY_DATA/runtime/servers`` (mode 0700): the
spawner writes it once the process exists and stamps ``stopped_at`` when it ends; the
platform service reads it to find servers the hub does not list (a hub that lost track of
a process, jupyterhub #4574) and to close sessions at the real stop time. A process is
alive only if its pid still has the start time recorded, so a reused pid is not mistaken
for the server.

The record also says whether the server ever accepted connections (``ready``): a session
that never did costs nothing. The service keeps its own marks beside the records
(``<key>.orphan``: when it found the server running unknown to the hub) and stops such an
orphan's process itself after a grace period (``stop_process``).

``Session`` is the ledger's shape of a server session, defined here once: the spawner's
ledger (``new_ledger``), the journal's ``Record`` and the service's sightings
(``mlfactory.service.reconcile.Sighting``) are built from its fields.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

_KEY_RE = re.compile(r"[A-Za-z0-9_-]{8,80}")


@dataclass(frozen=True)
class Session:
    """A server session as the ledger knows it: who runs what, since when, at what price."""

    key: str  # the spawner's session key, unique in the ledger
    user: str
    server_name: str
    started: float
    price_per_hour: float
    project: str = ""
    profile: str = ""
    resources: Mapping[str, Any] = field(default_factory=dict)
    groups: Sequence[str] = ()

    def __post_init__(self) -> None:
        # one type whatever the source (JSON gives lists): equal sessions compare equal
        object.__setattr__(self, "groups", tuple(self.groups))


_SESSION_FIELDS = tuple(f.name for f in fields(Session))


def session_fields(source: Any) -> dict[str, Any]:
    """The ``Session`` fields that ``source`` has: a Session (a journal record, a sighting),
    the spawner's ledger dict, or the gate's request. Build another shape of the same
    session from them, e.g. ``Record(**session_fields(ledger), pid=pid)``."""
    if isinstance(source, Mapping):
        return {name: source[name] for name in _SESSION_FIELDS if name in source}
    return {name: getattr(source, name) for name in _SESSION_FIELDS if hasattr(source, name)}


@dataclass(frozen=True)
class Record(Session):
    """A session in the journal: its server process, and whether and when it ended."""

    pid: int = 0
    pid_start: str = ""  # /proc/<pid>/stat field 22 at launch
    # the container backend's server: its container id (pid stays 0); its engine, from the
    # platform config, says whether it still runs
    container: str = ""
    stopped_at: float | None = None
    # False until the server accepts connections; None in records older than this field
    ready: bool | None = None


def new_ledger(user: str, server_name: str, groups: list[str], request: Any) -> dict[str, Any]:
    """A fresh session for the ledger: the spawner keeps it in its state, sends it to the
    budget gate and writes it to the journal. ``request`` is the resolved ResourceRequest."""
    session = Session(
        key=uuid.uuid4().hex,
        user=user,
        server_name=server_name,
        started=time.time(),
        price_per_hour=request.price_per_hour,
        project=request.project,
        profile=request.profile,
        resources=request.summary(),
    )
    return {**asdict(session), "groups": sorted(groups)}  # a list: the state is JSON


def record_of(ledger: dict[str, Any], pid: int = 0, container: str = "") -> Record:
    """The journal record of a session whose server is process ``pid`` (local backend) or
    container ``container`` (the container backend: its id, and pid 0)."""
    return Record(
        **session_fields(ledger),
        pid=pid,
        pid_start=process_start(pid) if pid else "",
        container=container,
        ready=bool(ledger.get("ready")),
    )


def _stat(pid: int) -> tuple[str, str]:
    """``pid``'s state letter and kernel start time (clock ticks since boot); ('', '') if it
    is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "", ""
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot), '' if it is gone."""
    return _stat(pid)[1]


def _running(record: Record) -> bool:
    """The recorded process still exists (a zombie that nobody reaped does not count)."""
    state, start = _stat(record.pid) if record.pid else ("", "")
    return bool(start) and start == record.pid_start and state not in ("Z", "X")


def alive(record: Record) -> bool:
    return record.stopped_at is None and _running(record)


def stop_process(record: Record, wait: float = 10.0) -> bool:
    """Stop the recorded server (TERM, then KILL after ``wait`` seconds); True once it is
    gone. Blocking: run it in a worker thread.

    Only the recorded process is signalled (its pid with the recorded start time), with its
    process group when it leads one (servers start in their own session, so their kernels
    go too); never this process or its own group.
    """
    if not _running(record):
        return True
    try:
        group = os.getpgid(record.pid)
    except ProcessLookupError:
        return True
    if group == os.getpgrp() or record.pid == os.getpid():
        return False
    leads = group == record.pid

    def send(sig: int) -> None:
        if not _running(record):  # checked before each signal: its pid may be reused later
            return
        try:
            if leads:
                os.killpg(group, sig)
            else:
                os.kill(record.pid, sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    send(signal.SIGCONT)  # a stopped (frozen) process handles TERM only once continued
    deadline = time.monotonic() + wait
    while _running(record) and time.monotonic() < deadline:
        time.sleep(0.1)
    send(signal.SIGKILL)
    deadline = time.monotonic() + wait
    while _running(record) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _running(record)


class Journal:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"bad session key {key!r}")
        return self.root / f"{key}.json"

    def write(self, record: Record) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(record.key)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(record), f)
        os.replace(tmp, path)

    def mark_stopped(self, key: str, when: float) -> None:
        record = self.read(key)
        if record is not None and record.stopped_at is None:
            self.write(replace(record, stopped_at=when))

    def mark_ready(self, key: str) -> None:
        record = self.read(key)
        if record is not None and not record.ready:
            self.write(replace(record, ready=True))

    def read(self, key: str) -> Record | None:
        try:
            return Record(**json.loads(self._path(key).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def records(self) -> list[Record]:
        out = []
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else ():
            record = self.read(path.stem)
            if record is not None:
                out.append(record)
        return out

    def forget(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        self.clear_orphan(key)

    # The platform service's marks: when it found a server running unknown to the hub.

    def orphan_marks(self) -> dict[str, float]:
        out = {}
        for path in sorted(self.root.glob("*.orphan")) if self.root.is_dir() else ():
            try:
                out[path.stem] = float(path.read_text())
            except (OSError, ValueError):
                continue
        return out

    def mark_orphan(self, key: str, when: float) -> None:
        # a container orphan may be the first thing ever marked here: no folder yet
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(key).with_suffix(".orphan")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(repr(when))

    def clear_orphan(self, key: str) -> None:
        self._path(key).with_suffix(".orphan").unlink(missing_ok=True)
