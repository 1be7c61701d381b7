"""Ports for the servers the tests start (hubs, proxies, services, registries, model servers).

A port from ``bind(("127.0.0.1", 0))`` is free only at that moment, and it lies in the
kernel's ephemeral range, from which every later ``bind(0)`` and outgoing connection also
draws: the hub's own ``random_port()`` for its services, a single-user server, a client
socket. One of them can take it before the test's server binds it, and the test then talks to
a stranger (CI once saw the proxy's API port answered by another server: 404 on /api/routes).

So tests hand out ports *below* the ephemeral range, each at most once per test process, and
only after checking that nothing holds it now. Nothing that asks the kernel for a port can get
one of these, and two tests in one run never get the same one.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading

# Below Linux's default ephemeral range (32768-60999, /proc/sys/net/ipv4/ip_local_port_range)
# and above the well-known services a test machine may run (PostgreSQL 5432, registries 5055/5056,
# the hub's 8000).
_LOW, _HIGH = 20000, 32000
_lock = threading.Lock()
# Start where another test process (a second pytest beside this one) is unlikely to be.
_next = itertools.count(_LOW + (os.getpid() * 7919) % (_HIGH - _LOW))


def _bindable(port: int) -> bool:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0")):
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A loopback TCP port nothing listens on, never handed out before in this process."""
    with _lock:
        for _ in range(_HIGH - _LOW):
            port = _LOW + (next(_next) - _LOW) % (_HIGH - _LOW)
            if _bindable(port):
                return port
    raise RuntimeError(f"no free port left between {_LOW} and {_HIGH}")
