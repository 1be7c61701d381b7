"""What a user's server learns from the platform config through its environment (pure).

Backend-independent: the local spawner sets these, and a Kubernetes backend would too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from mlfactory.hub.platform_config import PlatformConfig


def component_sources_env(config: PlatformConfig) -> str:
    """MLFACTORY_COMPONENT_SOURCES: the config's component sources, as JSON, in order."""
    return json.dumps([s.env_entry() for s in config.component_sources])


def data_stores_env(config: PlatformConfig, groups: Iterable[str]) -> str:
    """MLFACTORY_DATA_STORES: the data stores these groups may use (a store without groups is
    for everyone), as JSON ``[{"name", "kind", "url", "description"}]``. A managed store
    (``admin_credentials``) is listed for the groups it grants, with ``"managed": true``: its
    credentials come from the platform service at ``connect`` time, never from here."""
    mine = set(groups)
    out = []
    for d in config.data_stores:
        if d.managed:
            if not mine & {g.group for g in d.grants}:
                continue
        elif d.groups and not mine & set(d.groups):
            continue
        entry = {"name": d.name, "kind": d.kind, "url": d.url, "description": d.description}
        if d.managed:
            entry["managed"] = True
        out.append(entry)
    return json.dumps(out)


def platform_env(config: PlatformConfig, groups: Iterable[str]) -> dict[str, str]:
    """The variables, for a server of a user in ``groups``."""
    return {
        "MLFACTORY_COMPONENT_SOURCES": component_sources_env(config),
        "MLFACTORY_DATA_STORES": data_stores_env(config, groups),
        # read by the server extension, which sets jupyter-server-ydoc's disable_rtc
        "MLFACTORY_REALTIME": "1" if config.sharing.workspaces.realtime else "0",
    }
