"""Who this server is shared with, and who must be cut off: the pure rules behind workspace
shares (``workspace_shares.py`` does the I/O). No clock, no hub, no tornado.

The hub is the judge of access: a connected visitor stays only while the hub still says
their token may reach this server. These helpers turn the hub's answers into decisions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# JupyterHub's own name rules are looser; these are what a share request may carry here.
_NAME = re.compile(r"[^/\x00-\x1f\x7f]{1,255}")
KINDS = ("user", "group")


@dataclass(frozen=True, order=True)
class Grantee:
    """One user or group this server is shared with."""

    kind: str  # "user" or "group"
    name: str
    created_at: str = ""

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "created_at": self.created_at}


def parse_grant(body: Mapping[str, Any], owner: str) -> Grantee:
    """A grant or revoke request ``{"user": name}`` or ``{"group": name}``; ValueError with
    a message a person can act on otherwise."""
    given = [k for k in KINDS if k in body]
    if len(given) != 1:
        raise ValueError('Name one recipient: {"user": "<name>"} or {"group": "<name>"}.')
    kind = given[0]
    name = body[kind]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"The {kind} name must be 1-255 characters without '/'.")
    if kind == "user" and name == owner:
        raise ValueError("This is your own server: you need no share to use it.")
    return Grantee(kind, name)


def covers(held: str, required: str) -> bool:
    """Whether scope ``held`` grants ``required`` (``access:servers!server=alice/``), as the
    hub's check does for the filters a server's access scopes use: the bare scope covers
    every filter, ``!user=alice`` covers each of alice's servers, else it must match."""
    if held == required:
        return True
    name, _, filt = required.partition("!")
    held_name, _, held_filt = held.partition("!")
    if held_name != name:
        return False
    if not held_filt:
        return True
    if held_filt.startswith("user=") and filt.startswith("server="):
        return filt[len("server=") :].split("/", 1)[0] == held_filt[len("user=") :]
    return False


def still_allowed(user_model: Mapping[str, Any] | None, access_scopes: Iterable[str]) -> bool:
    """Whether the hub's fresh answer about a visitor's token still lets them in: a user
    model holding a scope that covers one of this server's access scopes."""
    if not user_model:
        return False
    held = [s for s in user_model.get("scopes") or () if isinstance(s, str)]
    return any(covers(h, r) for r in access_scopes for h in held)


def to_cut_off(verdicts: Mapping[str, bool], owner: str | None) -> set[str]:
    """The visitors to cut off, given ``{user: still_allowed}`` from a fresh hub check.

    The owner is never cut off here (stopping the server does that), nor is anyone on a
    standalone server (``owner`` None), where there are no visitors.
    """
    if owner is None:
        return set()
    return {user for user, allowed in verdicts.items() if not allowed and user != owner}


def stale_cache_keys(cache: Mapping[str, Any], users: Iterable[str]) -> list[str]:
    """Keys of HubAuth's cache whose cached user model names one of ``users``: dropping them
    makes the next request with that token ask the hub again."""
    names = set(users)
    return [
        key
        for key, model in cache.items()
        if isinstance(model, Mapping) and model.get("name") in names
    ]
