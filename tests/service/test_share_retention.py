"""Snapshot retention for ended notebook shares: the pure verdict (``share_retention.py``),
then the store's pass on SQLite and PostgreSQL - snapshots and previews of shares ended
longer ago than ``sharing.retention.keep_revoked`` go, their rows, versions and audit stay,
and a read says they were deleted on purpose. Time is the test's clock, never slept on."""

from __future__ import annotations

import pytest
from mlfactory.hub.platform_schema import SharingRetention
from mlfactory.service.periods import iso_utc
from mlfactory.service.share_retention import ACTOR, Ended, due, ended_at, is_due
from mlfactory.service.share_store import PURGED, ShareStore
from mlfactory.service.shares import ShareError, check_create, check_update

from .helpers import T0, Clock, platform_with
from .test_shares import engine, notebook  # noqa: F401 - the both-databases fixture

DAY = 86400


# --- the verdict ---------------------------------------------------------------------------


def test_a_share_ends_when_revoked_or_when_its_expiry_passes():
    assert ended_at(Ended("a", None, None), T0) is None
    assert ended_at(Ended("a", T0 - 5, None), T0) == T0 - 5
    assert ended_at(Ended("a", None, T0 - 7), T0) == T0 - 7
    assert ended_at(Ended("a", None, T0 + 7), T0) is None  # expires later: live
    assert ended_at(Ended("a", T0 - 5, T0 - 9), T0) == T0 - 9  # the earlier end counts
    assert ended_at(Ended("a", T0 - 5, T0 + 9), T0) == T0 - 5


def test_snapshots_go_once_ended_for_the_retention():
    keep = 90 * DAY
    revoked = Ended("r", T0 - keep, None)
    recent = Ended("n", T0 - keep + 1, None)
    expired = Ended("e", None, T0 - keep - 1)
    live = Ended("l", None, None)
    renewed = Ended("w", None, T0 + DAY)  # an expired share given a new expiry
    assert due([live, recent, revoked, expired, renewed], keep, T0) == ["e", "r"]
    assert not is_due(revoked, None, T0)  # null: kept forever
    assert is_due(Ended("z", T0, None), 0, T0)  # 0: at the first pass after the end
    assert not is_due(live, 0, T0)


def test_the_retention_setting():
    assert SharingRetention().keep_revoked == 90 * DAY
    cfg = platform_with(sharing={"retention": {"keep_revoked": "30d"}})
    assert cfg.sharing.retention.keep_revoked == 30 * DAY
    assert (
        platform_with(sharing={"retention": {"keep_revoked": None}}).sharing.retention.keep_revoked
        is None
    )
    with pytest.raises(Exception, match="keep_revoked"):
        platform_with(sharing={"retention": {"keep_revoked": "soon"}})


# --- the pass, on both databases --------------------------------------------------------------


async def _share(store: ShareStore, clock: Clock, owner: str = "alice", **extra):
    body = {"path": "w/a.ipynb", "notebook": notebook(), "users": ["bob"], **extra}
    req = check_create(body, owner=owner, now=clock(), max_bytes=10**6, max_recipients=9)
    return await store.create(owner, req)


async def test_the_pass_deletes_old_snapshots_and_keeps_the_audit(engine, tmp_path):  # noqa: F811
    clock = Clock()
    store = ShareStore(engine, tmp_path / "shares", clock)
    keep = 90 * DAY
    old = await _share(store, clock)
    await store.preview(old, 1)  # a rendered preview sits beside the snapshot
    young = await _share(store, clock)
    live = await _share(store, clock)
    expiring = await _share(store, clock, expires_at=iso_utc(T0 + DAY))
    await store.revoke(old, "alice")
    clock.advance(10 * DAY)
    await store.revoke(young, "alice")

    clock.advance(keep - 10 * DAY - 1)  # old: ended one second short of the retention
    assert await store.purge_ended(keep) == []
    clock.advance(1)
    assert await store.purge_ended(keep) == [old.id]
    assert not (tmp_path / "shares" / old.id).exists()
    for kept in (young, live, expiring):
        assert (tmp_path / "shares" / kept.id / "v1.ipynb").is_file()
    assert await store.purge_ended(keep) == []  # done once

    # the row, its versions and its audit stay; the purge itself is audited
    assert old.id in [s.id for s in await store.mine("alice")]
    assert [v["version"] for v in await store.versions(old.id)] == [1]
    events = await store.audit(0, clock() + 1, old.id, None, 10)
    assert [(e["action"], e["actor"]) for e in events] == [
        ("purge", ACTOR), ("revoke", "alice"), ("share", "alice")
    ]  # fmt: skip
    assert events[0]["detail"] == {"versions": 1, "kept_seconds": keep}
    # the owner reading it hears why it is gone (410), not "disk trouble"
    with pytest.raises(ShareError) as e:
        await store.snapshot(old, 1)
    assert (e.value.status, e.value.message) == (410, PURGED)

    # an expired share: ended for good when its snapshots go (nothing left to renew)
    # expiring ended at T0 + 1 day; it is now T0 + keep: due one day from now
    clock.advance(DAY - 1)
    assert expiring.id not in await store.purge_ended(keep)
    clock.advance(1)
    assert await store.purge_ended(keep) == [expiring.id]
    (gone,) = [s for s in await store.mine("alice") if s.id == expiring.id]
    assert gone.revoked_at is not None
    clock.advance(9 * DAY)  # young was revoked ten days after old
    assert await store.purge_ended(keep) == [young.id]
    assert (tmp_path / "shares" / live.id / "v1.ipynb").is_file()


async def test_a_renewed_share_is_not_touched(engine, tmp_path):  # noqa: F811
    clock = Clock()
    store = ShareStore(engine, tmp_path / "shares", clock)
    share = await _share(store, clock, expires_at=iso_utc(T0 + DAY))
    clock.advance(5 * DAY)  # expired 4 days ago; the owner gives it a new expiry
    up = check_update(
        {"expires_at": iso_utc(T0 + 300 * DAY)}, share, now=clock(), max_bytes=10**6,
        max_recipients=9,
    )  # fmt: skip
    await store.update(share, "alice", up)
    assert await store.purge_ended(DAY) == []
    assert (tmp_path / "shares" / share.id / "v1.ipynb").is_file()


async def test_null_keeps_everything(engine, tmp_path):  # noqa: F811
    clock = Clock()
    store = ShareStore(engine, tmp_path / "shares", clock)
    share = await _share(store, clock)
    await store.revoke(share, "alice")
    clock.advance(10_000 * DAY)
    assert await store.purge_ended(None) == []
    assert (tmp_path / "shares" / share.id / "v1.ipynb").is_file()
