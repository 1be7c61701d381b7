"""The base of the sharing routes (notebook shares in ``share_api.py``, workspace shares in
``workspace_share_api.py``): the caller's identity and groups, the sharing config, the
store, and the recipient checks and suggestions both kinds of share use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from mlfactory.hub.platform_schema import Sharing
from tornado.log import app_log as log

from .base import APIError, UserHandler
from .share_store import NOT_FOUND, ShareStore, SnapshotMissing, shares_dir
from .shares import (
    SHARE_ID,
    Request,
    Share,
    ShareError,
    may_read,
    refusal_status,
    refused_recipients,
)

HUB_BUSY = "The hub cannot be asked who exists; try again in a minute."
MAX_AUDIT = 1000


# --- whom the Share dialog offers ----------------------------------------------------------

MAX_SUGGESTIONS = 50
MAX_QUERY = 255
# Seconds the hub's list of users and groups is reused for the dialog's search-as-you-type.
# Suggestions only: creating a share asks the hub afresh (``check_recipients``), so a user
# removed meanwhile is refused by name, never shared with.
DIRECTORY_MAX_AGE = 30.0


def _by_name(name: str) -> tuple[str, str]:
    return name.casefold(), name


def recipient_suggestions(
    query: str,
    *,
    users: Iterable[str],
    groups: Mapping[str, Collection[str]],
    me: str,
    my_groups: Collection[str],
    is_admin: bool,
    group_policy: str,
    user_policy: str,
    limit: int,
) -> dict[str, Any]:
    """The users and groups ``me`` may share with whose names start with ``query`` (any case),
    alphabetically, at most ``limit`` of each; never ``me``. The rules of
    ``refused_recipients``: groups are the caller's own (every group for admins or ``groups:
    any``); users any hub user, or those sharing a group with the caller (``users:
    same-group``). Pure."""
    q = query.strip().casefold()
    mine = set(my_groups)
    if user_policy == "same-group" and not is_admin:
        allowed_users: Iterable[str] = {m for g in mine for m in groups.get(g, ())}
    else:
        allowed_users = users
    known = set(users)
    names = sorted(
        (u for u in allowed_users if u != me and u in known and u.casefold().startswith(q)),
        key=_by_name,
    )
    visible = groups if (is_admin or group_policy == "any") else [g for g in groups if g in mine]
    gnames = sorted((g for g in visible if g.casefold().startswith(q)), key=_by_name)
    return {
        "query": query,
        "users": names[:limit],
        "groups": gnames[:limit],
        "truncated": len(names) > limit or len(gnames) > limit,
    }


class Directory:
    """The hub's user names and groups (with members), fetched at most every ``max_age``
    seconds, one fetch at a time; the last good answer is kept while the hub is away."""

    def __init__(self, clock: Callable[[], float], max_age: float = DIRECTORY_MAX_AGE) -> None:
        self.clock = clock
        self.max_age = max_age
        self.users: list[str] = []
        self.groups: dict[str, list[str]] = {}
        self.fetched_at: float | None = None
        self._lock = asyncio.Lock()

    def fresh(self) -> bool:
        return self.fetched_at is not None and self.clock() - self.fetched_at < self.max_age

    async def load(self, hub: Any) -> tuple[list[str], dict[str, list[str]]]:
        async with self._lock:
            if not self.fresh():
                try:
                    users = [u["name"] async for u in hub.users()]
                    groups = {g["name"]: list(g.get("users") or ()) for g in await hub.groups()}
                except Exception as e:  # the hub restarting: the last answer, if any
                    if self.fetched_at is None:
                        raise
                    log.warning("Listing the hub's users for share suggestions failed: %s", e)
                else:
                    self.users, self.groups = users, groups
                    self.fetched_at = self.clock()
            return self.users, self.groups


# --- REST -------------------------------------------------------------------------------


class ShareHandler(UserHandler):
    """Base of the share routes: the store, the config and reading one share."""

    @property
    def sharing(self) -> Sharing:
        return self.accountant.config.sharing

    @property
    def shares(self) -> ShareStore:
        settings = self.application.settings
        store = settings.get("shares")
        if store is None:  # built on first use, next to the accountant's database
            store = settings["shares"] = ShareStore(
                self.accountant.store.engine,
                settings.get("shares_dir") or shares_dir(),
                self.accountant.clock,
            )
        return store

    @property
    def directory(self) -> Directory:
        settings = self.application.settings
        found = settings.get("share_directory")
        if found is None:
            found = settings["share_directory"] = Directory(self.accountant.clock)
        return found

    @staticmethod
    def fail(e: ShareError) -> APIError:
        return APIError(e.status, e.message, e.field)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SnapshotMissing):
            self.set_status(500)
            body = {
                "error": "This share's snapshot cannot be read; tell an admin (the log says why)."
            }
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
            return
        super().write_error(status_code, **kwargs)

    async def readable(self, share_id: str) -> tuple[Share, list[str]]:
        """The share if the caller may read it, with the caller's groups; else 404, the same
        answer as for an id that never existed (revoked and expired shares included)."""
        if not SHARE_ID.fullmatch(share_id):
            raise APIError(404, NOT_FOUND)
        share = await self.shares.get(share_id)
        groups = await self.my_groups()
        if share is None or not may_read(share, self.model["name"], groups, self.now()):
            raise APIError(404, NOT_FOUND)
        return share, groups

    async def owned(self, share_id: str) -> Share:
        share, _ = await self.readable(share_id)
        if share.owner != self.model["name"]:
            raise APIError(403, "Only the owner of a share can change or revoke it.")
        return share

    def version_arg(self, share: Share) -> int:
        raw = self.get_argument("version", None)
        if raw is None:
            return share.version
        if not raw.isdigit() or not 1 <= int(raw) <= share.version:
            raise APIError(404, f"version: this share has versions 1 to {share.version}", "version")
        return int(raw)

    def max_body(self) -> int:
        # the notebook travels as JSON inside JSON: escapes may add to its size
        return 4 * self.sharing.max_notebook_bytes + 64 * 1024

    async def check_recipients(self, req: Request) -> None:
        """404 naming each recipient that does not exist or that the owner may not name (403
        when all that stands in the way is the ``same-group`` rule)."""
        if req.users is None:
            return
        await self.check_names(req.users, req.groups or ())

    async def check_names(self, users: tuple[str, ...], groups: tuple[str, ...]) -> None:
        """``check_recipients`` for plain names (notebook and workspace shares alike)."""
        hub = self.accountant.hub
        if hub is None:
            raise APIError(503, HUB_BUSY)
        try:
            found = await asyncio.gather(*(hub.user(u) for u in users))
            existing_groups = (
                {g["name"]: list(g.get("users") or ()) for g in await hub.groups()}
                if (groups or self.sharing.users == "same-group")
                else {}
            )
        except Exception as e:  # the hub restarting; never a half-checked share
            log.warning("Checking share recipients with the hub failed: %s", e)
            raise APIError(503, HUB_BUSY) from None
        problems = refused_recipients(
            users,
            groups,
            existing_users={u for u, model in zip(users, found, strict=True) if model},
            existing_groups=existing_groups,
            owner_groups=await self.my_groups(),
            owner_is_admin=bool(self.model.get("admin")),
            group_policy=self.sharing.groups,
            user_policy=self.sharing.users,
        )
        if problems:
            raise APIError(
                refusal_status(problems), " ".join(m for _, m in problems), problems[0][0]
            )
