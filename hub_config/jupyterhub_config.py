"""The shipped JupyterHub config: ``jupyterhub -f hub_config/jupyterhub_config.py``.

Loads the platform file (``$MLFACTORY_CONFIG``, default: the example shipped in
``mlfactory/hub/mlfactory.yaml``), refuses to start on a bad file, and adds the
one-machine defaults unless the hub runs on Kubernetes or ``MLFACTORY_EMBEDDED=0``.
Put your own overrides after this file: ``jupyterhub -f this -f yours.py`` is not
supported by JupyterHub, so copy this file or add ``c.…`` lines at its end.
"""

import os
import sys

from mlfactory.hub.hubconfig import apply_embedded_defaults, apply_platform, running_on_kubernetes
from mlfactory.hub.platform_config import ConfigError, load_platform_config

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

try:
    platform = load_platform_config()
except ConfigError as e:
    sys.exit(f"mlfactory: refusing to start, the platform config is invalid:\n{e}")

apply_platform(c, platform)
if os.environ.get("MLFACTORY_EMBEDDED", "1") != "0" and not running_on_kubernetes():
    try:  # single sign-on reads the provider's discovery document and secret here
        apply_embedded_defaults(c, platform=platform)
    except ConfigError as e:
        sys.exit(f"mlfactory: refusing to start:\n{e}")
