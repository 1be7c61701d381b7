"""The tie between the hub and the services it manages (the platform service, the models
service): a managed service ends when its hub does, however the hub ends.

JupyterHub stops its managed services in its own clean-up, which runs only once the hub has
finished starting (its signal handlers come last) and never after SIGKILL or the OOM killer.
A hub stopped while it starts, or killed, left its services running with nobody to stop
them: a second platform service then ticked, culled and sent alerts beside the next hub's.

The hub puts its pid in each managed service's environment (``hub_env``); the service asks
Linux to send it SIGTERM when that process ends (``exit_with_hub``), which its own handler
treats as a normal stop. A service started any other way (by hand, on Kubernetes as its own
pod) has no such variable and is left alone.

It lives in ``model_api`` because that part imports no other (the models service needs it),
while the hub and the platform service may import ``model_api``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Mapping

HUB_PID = "MLFACTORY_HUB_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def hub_env() -> dict[str, str]:
    """What the hub adds to a managed service's environment (evaluated in the hub's process)."""
    return {HUB_PID: str(os.getpid())}


def exit_with_hub(env: Mapping[str, str] = os.environ) -> bool:
    """End this process with SIGTERM when the hub that started it ends. Returns whether the
    tie is in place (only on Linux, and only when the hub set ``MLFACTORY_HUB_PID``)."""
    hub = env.get(HUB_PID, "")
    if not hub.isdigit() or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    # the hub may have ended between our start and the prctl: nobody would signal us then
    # (a parent that is not the hub, e.g. a wrapper command, is left to signal us itself)
    if os.getppid() != int(hub) and not _running(int(hub)):
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True
