"""What mlfactory adds to the hub process at start: nothing for a feature it does not use.

The hub holds what its config imports for its whole life (issue 20: hub + service within
1.5x a vanilla hub's memory). Without a single sign-on provider the hub never loads
oauthenticator or PyJWT; with local processes (or Kubernetes) it never loads docker-py.
Run in a fresh interpreter, as the hub loads ``jupyterhub_config.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

NOT_WITHOUT_SSO_OR_CONTAINERS = (
    "oauthenticator",
    "jwt",
    "docker",
    "requests",
    "kubernetes_asyncio",
    "kubespawner",
    "numpy",  # mlfactory.model_api loads its names at first use; the hub needs only auth
)
# The platform service's own store (its tables, mappers, reconcile rules): the hub needs only
# the names of the service's scopes (``mlfactory.service.scopes``).
NEVER_IN_THE_HUB = (
    "mlfactory.service.store",
    "mlfactory.service.db",
    "mlfactory.service.reconcile",
)

HUB_CONFIG = """
    import json, sys
    import jupyterhub.app  # what the hub has loaded before it reads its config
    from traitlets.config import Config
    from mlfactory.hub.hubconfig import apply_embedded_defaults, apply_platform
    from mlfactory.hub.platform_config import load_platform_config

    c = Config()
    platform = load_platform_config()
    apply_platform(c, platform)
    apply_embedded_defaults(c, platform=platform)
    assert c.JupyterHub.spawner_class == "mlfactory-local"
    print(json.dumps(sorted(sys.modules)))
"""


def test_the_shipped_config_with_local_processes_loads_no_sso_or_engine_client(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFACTORY_", "JUPYTERHUB_"))}
    env.update(MLFACTORY_DATA=str(tmp_path / "data"), MLFACTORY_BACKEND="local")
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(HUB_CONFIG)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
        cwd=tmp_path,
    )
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    loaded = {m.split(".")[0] for m in modules}
    assert {"jupyterhub", "mlfactory", "traitlets"} <= loaded  # the check sees imports at all
    assert sorted(loaded & set(NOT_WITHOUT_SSO_OR_CONTAINERS)) == []
    assert "mlfactory.service.scopes" in modules
    assert sorted(modules & set(NEVER_IN_THE_HUB)) == []
