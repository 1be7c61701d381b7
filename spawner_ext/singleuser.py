"""The single-user server command: ``python -m mlfactory.spawner.singleuser`` (the local
backend runs it with the hub's Python, the container backend with the image's).

It is ``jupyterhub-singleuser`` with three changes:

- it refuses to start when the hub runs another mlfactory than the one installed here
  (``MLFACTORY_HUB_VERSION``, set by the container backend): a container image built for
  another release would speak another protocol to the hub's panels and service.

- one start-up cost deferred: jsonschema imports ``rfc3987_syntax`` eagerly, which compiles
  ~35 Lark parsers (about 1 s here, half of a server's start) although no Jupyter schema
  uses the ``iri`` formats it checks (jsonschema #1428, jupyter_server #1559). The real
  module is loaded on first use, so validation behaves exactly as before.
- the hub's answers about a token (or the OAuth cookie holding one) are trusted for
  ``AUTH_CACHE_SECONDS``, not HubAuth's default 300 s: the hub refuses an expired token or a
  deleted user's on the next request, and the server must follow within seconds.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Sequence

AUTH_CACHE_SECONDS = 2


def defer_module_function(module_name: str, function_name: str) -> bool:
    """Put a stand-in for ``module_name`` in ``sys.modules`` whose ``function_name`` imports
    the real module on first call. Returns False (and does nothing) when the module is
    already imported or not installed."""
    if module_name in sys.modules or importlib.util.find_spec(module_name) is None:
        return False
    stand_in = types.ModuleType(module_name)
    real_function: Callable | None = None

    def deferred(*args, **kwargs):
        nonlocal real_function
        if real_function is None:
            if sys.modules.get(module_name) is stand_in:
                del sys.modules[module_name]
            real_function = getattr(importlib.import_module(module_name), function_name)
        return real_function(*args, **kwargs)

    setattr(stand_in, function_name, deferred)
    sys.modules[module_name] = stand_in
    return True


def with_auth_cache_bound(argv: Sequence[str]) -> list[str]:
    """The server's arguments with ``--HubOAuth.cache_max_age`` set to AUTH_CACHE_SECONDS,
    unless they set it already (an admin's ``Spawner.args`` win). HubOAuth is made with the
    server as its parent, so it reads this from the server's config."""
    if any(a.startswith("--HubOAuth.cache_max_age") for a in argv):
        return list(argv)
    return [*argv, f"--HubOAuth.cache_max_age={AUTH_CACHE_SECONDS}"]


def version_problem(hub_version: str | None, own_version: str) -> str | None:
    """What to say when this server's mlfactory is not the hub's; None when they match or
    the hub did not say (the local backend runs the hub's own installation)."""
    if not hub_version or hub_version == own_version:
        return None
    return (
        f"This image has mlfactory {own_version} but the hub runs {hub_version}; "
        "ask an admin to rebuild the image (mlfactory images build)"
    )


def main() -> None:
    problem = version_problem(
        os.environ.get("MLFACTORY_HUB_VERSION"), importlib.metadata.version("mlfactory")
    )
    if problem:
        sys.exit(problem)  # on stderr, exit code 1: the spawn page shows this line
    defer_module_function("rfc3987_syntax", "is_valid_syntax")
    sys.argv[1:] = with_auth_cache_bound(sys.argv[1:])
    from jupyterhub.singleuser import main as singleuser_main

    singleuser_main()


if __name__ == "__main__":
    main()
