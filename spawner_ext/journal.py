"""The local backend's record of running servers, for the platform service's ledger.

One JSON file per server session in ``$MLFACTORY_DATA/runtime/servers`` (mode 0700): the
spawner writes it once the process exists and stamps ``stopped_at`` when it ends; the
platform service reads it to find servers the hub does not list (a hub that lost track of
a process, jupyterhub #4574) and to close sessions at the real stop time. A process is
alive only if its pid still has the start time recorded, so a reused pid is not mistaken
for the server.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_KEY_RE = re.compile(r"[A-Za-z0-9_-]{8,80}")


@dataclass
class Record:
    key: str
    user: str
    server_name: str
    started: float
    price_per_hour: float
    project: str = ""
    profile: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    pid: int = 0
    pid_start: str = ""  # /proc/<pid>/stat field 22 at launch
    stopped_at: float | None = None


def new_ledger(user: str, server_name: str, groups: list[str], request: Any) -> dict[str, Any]:
    """A fresh session for the ledger: the spawner keeps it in its state, sends it to the
    budget gate and writes it to the journal. ``request`` is the resolved ResourceRequest."""
    return {
        "key": uuid.uuid4().hex,
        "user": user,
        "server_name": server_name,
        "project": request.project,
        "profile": request.profile,
        "price_per_hour": request.price_per_hour,
        "resources": request.summary(),
        "groups": sorted(groups),
        "started": time.time(),
    }


def record_of(ledger: dict[str, Any], pid: int) -> Record:
    """The journal record of a session whose server process is ``pid``."""
    fields = {k: ledger[k] for k in ("key", "user", "server_name", "started", "price_per_hour")}
    extra = {k: ledger[k] for k in ("project", "profile", "resources", "groups")}
    return Record(**fields, **extra, pid=pid, pid_start=process_start(pid))


def process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot), '' if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return stat[stat.rindex(")") + 2 :].split()[19]


def alive(record: Record) -> bool:
    return (
        bool(record.pid)
        and record.stopped_at is None
        and (process_start(record.pid) == record.pid_start)
    )


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
            record.stopped_at = when
            self.write(record)

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
