"""Kernel websocket messages: a binary frame read as jupyter_server's legacy format may not
claim more parts than it has bytes for.

jupyter_server reads a binary frame as the legacy format whenever the connection's
subprotocol reads as None, which it also does once the websocket has closed (its
``subprotocol`` property then fails and falls back). A frame of the v1 protocol still in
flight when a socket closes (a revoked visitor's, say) starts with its part count as a
little-endian uint64; read as the legacy big-endian int32, 6 parts become 100,663,296, and
``deserialize_binary_message`` builds a struct format and a list of that many offsets: 2 GiB,
and the memory cgroup killed the server (seen twice in the workspace-share browser tests).
The same frame sent on purpose by anyone allowed on the server would do it too. Here the
count is checked against the frame's length before upstream's reader runs.
"""

from __future__ import annotations

import functools
import struct
from typing import Any


def check_part_count(bmsg: bytes) -> None:
    """ValueError unless ``bmsg`` holds the legacy header it claims: a 32-bit part count,
    then a 32-bit offset per part (pure)."""
    if len(bmsg) < 4:
        raise ValueError("a binary kernel message needs at least 4 bytes")
    (nbufs,) = struct.unpack("!i", bmsg[:4])
    if not 0 < nbufs <= (len(bmsg) - 4) // 4:
        raise ValueError(f"a binary kernel message of {len(bmsg)} bytes cannot have {nbufs} parts")


def bound_binary_messages() -> bool:
    """Put the check in front of the legacy reader jupyter_server's channels use; once."""
    from jupyter_server.services.kernels.connection import channels

    original = channels.deserialize_binary_message
    if getattr(original, "_mlfactory_bounded", False):
        return True

    @functools.wraps(original)
    def deserialize_binary_message(bmsg: bytes) -> Any:
        check_part_count(bmsg)
        return original(bmsg)

    deserialize_binary_message._mlfactory_bounded = True  # type: ignore[attr-defined]
    channels.deserialize_binary_message = deserialize_binary_message
    return True
