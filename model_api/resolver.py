"""Tornado's address resolver, without the thread for addresses that are already IPs.

Tornado's default resolver hands every host, ``127.0.0.1`` included, to ``getaddrinfo`` in
the event loop's thread pool, and the answer comes back on a later turn of the loop. The
platform's own calls go to IP literals (the hub's budget gate and home page to the platform
service, the hub's readiness checks and proxy API, the service to the hub), so each paid a
thread hop for nothing: 0.2-0.3 ms of a 0.6 ms local call, more when the loop is busy
(``benchmarks/budgets.py --http``). This resolver answers an IP literal at once and passes
names to tornado's default resolver, so what a name resolves to is unchanged.

``install()`` makes it the process's default (``tornado.netutil.Resolver.configure``); the
hub config, the platform service, the models service and the server extension call it
before their HTTP clients exist. It lives in ``model_api``, the part every other may import.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from tornado.netutil import DefaultLoopResolver, Resolver


def _literal_family(host: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 for an IP literal; None for a name (or a scoped IPv6 address,
    "fe80::1%eth0", whose interface is getaddrinfo's to look up)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        return socket.AF_INET
    return None if ip.scope_id else socket.AF_INET6


class LiteralFirstResolver(Resolver):
    """IP literals answered in place; host names through tornado's default resolver."""

    def initialize(self) -> None:
        self._names = DefaultLoopResolver()

    def close(self) -> None:
        self._names.close()

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        af = _literal_family(host)
        # a family the literal is not (an IPv6 address on an IPv4-only request): the
        # default resolver gives getaddrinfo's own error
        if af is None or family not in (socket.AF_UNSPEC, af):
            return await self._names.resolve(host, port, family)
        return [(af, (host, port) if af == socket.AF_INET else (host, port, 0, 0))]


def install() -> None:
    """Make `LiteralFirstResolver` the default of every tornado client created from now on."""
    Resolver.configure(LiteralFirstResolver)
