"""Who owns this single-user server, and whether a caller may act as that owner.

Pure functions: the app reads the environment once and the handlers pass names in.
"""

from __future__ import annotations

from collections.abc import Mapping

# Either variable is set by JupyterHub's Spawner.get_env for every single-user server.
_HUB_ENV_MARKERS = ("JUPYTERHUB_USER", "JUPYTERHUB_API_TOKEN")


def owner_from_env(environ: Mapping[str, str]) -> str | None:
    """The hub user this server was spawned for, or None when JupyterHub did not start it.

    Started by the hub but without JUPYTERHUB_USER gives "", which no caller matches
    (fail closed rather than letting everyone in).
    """
    if any(name in environ for name in _HUB_ENV_MARKERS):
        return environ.get("JUPYTERHUB_USER", "")
    return None


def is_owner(caller: str, owner: str | None) -> bool:
    """Whether an authenticated `caller` may do what only the server's owner may do.

    `owner` None means a standalone server: its token or password is the only way in and
    jupyter_server names token users at random, so every authenticated caller is the owner.
    Under JupyterHub a shared server lets other hub users in, so the names must match.
    """
    if owner is None:
        return True
    return bool(owner) and caller == owner
