"""The labels a server's container carries, and the session read back from them. Pure.

Every container the container backend makes is labelled with who runs it and its ledger
session, so that the platform service can find each one through the engine alone (a label
filter), bill it, and stop one the hub forgot: the same ``Session`` the local backend's
journal holds, with the container in place of the process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .journal import Session, session_fields

PREFIX = "org.mlfactory."
MANAGED = PREFIX + "managed"  # "1" on every container and volume mlfactory makes
KEY = PREFIX + "ledger-key"
# Which platform made it: several hubs may share one engine, and each platform service must
# bill and stop only its own hub's containers (any other's would look like orphans).
INSTANCE = PREFIX + "instance"


def instance_id(data: Path) -> str:
    """The platform instance of the data folder ``data`` (its hub, service and journal)."""
    return hashlib.sha256(str(Path(data).resolve()).encode()).hexdigest()[:16]


def session_labels(ledger: Mapping[str, Any], team: str = "") -> dict[str, str]:
    """Labels for a container running the session ``ledger`` (the spawner's ledger dict):
    each ``Session`` field as text, plus the user's team (first group) for engine-side
    filtering (``docker ps --filter label=org.mlfactory.team=...``)."""
    fields = session_fields(ledger)
    labels = {MANAGED: "1", PREFIX + "team": team}
    for name, value in fields.items():
        if name == "key":
            labels[KEY] = str(value)
        elif isinstance(value, str):
            labels[PREFIX + name.replace("_", "-")] = value
        else:  # numbers, resources, groups: JSON keeps their type
            labels[PREFIX + name.replace("_", "-")] = json.dumps(value, sort_keys=True)
    return labels


def session_from_labels(labels: Mapping[str, str]) -> Session | None:
    """The session a container's labels describe; None for a container mlfactory did not
    make or whose labels are incomplete or malformed (it is then left alone)."""
    if labels.get(MANAGED) != "1" or not labels.get(KEY):
        return None
    values: dict[str, Any] = {"key": labels[KEY]}
    try:
        for name in Session.__dataclass_fields__:
            label = PREFIX + name.replace("_", "-")
            if name == "key" or label not in labels:
                continue
            field_type = Session.__dataclass_fields__[name].type
            raw = labels[label]
            values[name] = raw if field_type == "str" else json.loads(raw)
        return Session(**values)
    except (TypeError, ValueError):
        return None
