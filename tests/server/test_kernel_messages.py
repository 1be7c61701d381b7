"""A binary kernel frame read as jupyter_server's legacy format cannot claim more parts than
it has bytes for: a v1 frame still in flight when its socket closed made the server build a
2 GiB list and the memory cgroup killed it."""

from __future__ import annotations

import json
import struct

import pytest
from jupyter_server.services.kernels.connection import base, channels
from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1
from mlfactory.server import kernel_messages

MSG = {
    "header": {"msg_id": "1", "msg_type": "execute_request", "date": "2026-12-06T00:00:00Z"},
    "parent_header": {},
    "metadata": {},
    "content": {"code": "1"},
}


def legacy_frame(parts: list[bytes]) -> bytes:
    """jupyter_server's legacy binary layout: count, offsets (big-endian), then the parts."""
    offsets, start = [], 4 + 4 * len(parts)
    for part in parts:
        offsets.append(start)
        start += len(part)
    return struct.pack("!I" + "I" * len(parts), len(parts), *offsets) + b"".join(parts)


def test_a_v1_frame_read_as_legacy_is_refused_before_any_allocation():
    v1 = serialize_msg_to_ws_v1(
        [json.dumps(MSG[k]).encode() for k in ("header", "parent_header", "metadata", "content")],
        "shell",
    )
    (claimed,) = struct.unpack("!i", v1[:4])
    assert claimed > 10**6  # what upstream would build a format and a list of
    with pytest.raises(ValueError, match="cannot have"):
        kernel_messages.check_part_count(v1)


@pytest.mark.parametrize("frame", [b"", b"\x00\x00", struct.pack("!i", 0), struct.pack("!i", -1)])
def test_short_or_empty_counts_are_refused(frame):
    with pytest.raises(ValueError):
        kernel_messages.check_part_count(frame)


def test_the_channels_read_legacy_frames_through_the_check():
    assert kernel_messages.bound_binary_messages() is True
    assert kernel_messages.bound_binary_messages() is True  # once only
    reader = channels.deserialize_binary_message
    assert reader is not base.deserialize_binary_message
    # a well-formed legacy frame reads exactly as upstream reads it
    frame = legacy_frame([json.dumps(MSG).encode(), b"buffer"])
    assert reader(frame) == base.deserialize_binary_message(frame)
    assert reader(frame)["buffers"] == [b"buffer"]
    with pytest.raises(ValueError):
        reader(struct.pack("!i", 100_663_296) + b"x" * 277)
