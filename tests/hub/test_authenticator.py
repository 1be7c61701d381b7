"""MLFactoryAuthenticator and its account store: login, persistent lockout, approval,
bootstrap admin, and the signup/authorize/change-password pages through a real (mock) hub."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
from pathlib import Path

import pytest
from mlfactory.hub import accounts
from mlfactory.hub import authenticator as authenticator_module
from mlfactory.hub.account_store import AccountExists, AccountStore
from mlfactory.hub.authenticator import MLFactoryAuthenticator
from sqlalchemy import event
from sqlalchemy.engine import Engine
from tornado import web
from traitlets import TraitError

FAST = accounts.ScryptParams(n=16, r=1, p=1)
PASSWORD = "correct horse battery"


def add_account(store, name, password=PASSWORD, *, authorized=True, params=FAST):
    return store.create_account(
        name, accounts.hash_password(password, params), authorized=authorized
    )


async def login(auth, name, password=PASSWORD):
    return await auth.authenticate(None, {"username": name, "password": password})


# --- settings ----------------------------------------------------------------------------------


def test_default_db_url_under_mlfactory_data(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "state"))
    auth = MLFactoryAuthenticator()
    assert auth.accounts_db_url == f"sqlite:///{tmp_path / 'state' / 'accounts.sqlite'}"


def test_default_db_url_falls_back_to_dot_mlfactory(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFACTORY_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    auth = MLFactoryAuthenticator()
    assert auth.accounts_db_url == f"sqlite:///{tmp_path / '.mlfactory' / 'accounts.sqlite'}"


def test_store_creates_private_folder_and_file(tmp_path):
    path = tmp_path / "new" / "accounts.sqlite"
    AccountStore(f"sqlite:///{path}").close()
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def file_modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_account_files_are_never_open_to_others(tmp_path, umask_022, caplog):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    seen = []  # file modes at the moment each database connection opens

    def spy(_dbapi_connection, _record):
        seen.append(file_modes(folder))

    event.listen(Engine, "connect", spy)
    try:
        with caplog.at_level(logging.WARNING):
            store = AccountStore(f"sqlite:///{folder / 'accounts.sqlite'}")
        add_account(store, "alice")
        seen.append(file_modes(folder))  # the WAL and shared-memory files exist now
        store.close()
    finally:
        event.remove(Engine, "connect", spy)
    assert {"accounts.sqlite-wal", "accounts.sqlite-shm"} <= set(seen[-1])
    assert all(mode == 0o600 for modes in seen for mode in modes.values()), seen
    # the admin's folder is left alone, but they are told
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert "accessible to other users" in caplog.text


def test_account_files_from_before_are_tightened(tmp_path, umask_022):
    path = tmp_path / "accounts.sqlite"
    path.touch(mode=0o644)  # an empty file is an empty SQLite database
    shm = Path(f"{path}-shm")  # left behind by a crash; SQLite reuses it as it is
    shm.write_bytes(bytes(32768))
    shm.chmod(0o644)
    store = AccountStore(f"sqlite:///{path}")
    add_account(store, "alice")
    modes = file_modes(tmp_path)
    store.close()
    names = ["accounts.sqlite", "accounts.sqlite-shm", "accounts.sqlite-wal"]
    assert modes == dict.fromkeys(names, 0o600)


@pytest.mark.parametrize(
    "trait,value",
    [
        ("minimum_password_length", 0),
        ("allowed_failed_logins", -1),
        ("lockout_seconds", -5),
        ("password_hash_cost", {"n": 1000, "r": 8, "p": 1}),
        ("max_pending_signups", -1),
    ],
)
def test_bad_settings_are_refused(trait, value):
    with pytest.raises((TraitError, ValueError)):
        MLFactoryAuthenticator(**{trait: value})


def test_allow_all_defaults_on_unless_allow_config_narrows_it():
    assert MLFactoryAuthenticator().allow_all is True
    assert MLFactoryAuthenticator(allowed_users={"alice"}).allow_all is False
    assert MLFactoryAuthenticator(allow_existing_users=True).allow_all is False


# --- login -------------------------------------------------------------------------------------


async def test_right_password_logs_in(make_authenticator, store):
    add_account(store, "alice")
    auth = make_authenticator()
    assert await login(auth, "alice") == "alice"
    assert await login(auth, "  Alice ") == "alice"  # normalised like the hub does


async def test_unknown_user_is_refused_and_nothing_is_stored(make_authenticator, store):
    auth = make_authenticator()
    assert await login(auth, "nobody") is None
    assert await login(auth, "bad\nname") is None
    assert store.get("nobody") is None


async def test_wrong_password_records_failure_persistently(make_authenticator, store, clock):
    add_account(store, "alice")
    auth = make_authenticator()
    assert await login(auth, "alice", "wrong password") is None
    account = store.get("alice")
    assert account.failed_logins == 1
    assert account.last_failed_at == clock.now

    assert await login(auth, "alice") == "alice"
    assert store.get("alice").failed_logins == 0


async def test_lockout_survives_restart_and_expires_with_the_clock(
    make_authenticator, store, clock
):
    add_account(store, "alice")
    auth = make_authenticator(allowed_failed_logins=3, lockout_seconds=600)
    assert await login(auth, "alice", "wrong-1") is None
    clock.advance(10)
    assert await login(auth, "alice", "wrong-2") is None
    clock.advance(10)
    with pytest.raises(web.HTTPError) as failed:
        await login(auth, "alice", "wrong-3")
    assert failed.value.status_code == 429
    assert failed.value.log_message == "Too many failed attempts; try again in 10 minutes."

    restarted = make_authenticator(allowed_failed_logins=3, lockout_seconds=600)
    clock.advance(300)
    with pytest.raises(web.HTTPError) as locked:
        await login(restarted, "alice")  # the right password does not help
    assert locked.value.status_code == 429
    assert "try again in 5 minutes" in locked.value.log_message
    assert locked.value.headers == {"Retry-After": "300"}
    assert store.get("alice").failed_logins == 3  # attempts while locked are not counted

    clock.advance(299)
    with pytest.raises(web.HTTPError, match="try again in 1 minute"):
        await login(restarted, "alice")
    clock.advance(1)
    assert await login(restarted, "alice") == "alice"
    assert store.get("alice").failed_logins == 0


async def test_old_failures_are_forgiven(make_authenticator, store, clock):
    add_account(store, "alice")
    auth = make_authenticator(allowed_failed_logins=2, lockout_seconds=60)
    assert await login(auth, "alice", "typo") is None
    clock.advance(61)
    assert await login(auth, "alice", "typo again") is None  # count restarted at 1
    assert await login(auth, "alice") == "alice"


async def test_lockout_disabled_with_zero(make_authenticator, store):
    add_account(store, "alice")
    auth = make_authenticator(allowed_failed_logins=0)
    for _ in range(10):
        assert await login(auth, "alice", "wrong") is None
    assert await login(auth, "alice") == "alice"


async def test_concurrent_guesses_cannot_exceed_the_limit(make_authenticator, store):
    add_account(store, "alice")
    auth = make_authenticator(allowed_failed_logins=5)
    auth._hash_slots = asyncio.Semaphore(20)  # let the guesses really run in parallel
    results = await asyncio.gather(
        *(login(auth, "alice", f"guess-{i}") for i in range(20)), return_exceptions=True
    )
    assert results.count(None) == 4
    assert all(isinstance(r, web.HTTPError) and r.status_code == 429 for r in results if r)
    assert store.get("alice").failed_logins == 5


async def answer(auth, name, password):
    """What a login attempt shows: None, or (status, message, headers) of the refusal."""
    try:
        return await login(auth, name, password)
    except web.HTTPError as e:
        return e.status_code, e.log_message, e.headers


async def test_unknown_names_lock_out_exactly_like_real_accounts(make_authenticator, store, clock):
    add_account(store, "alice")
    auth = make_authenticator(allowed_failed_logins=3, lockout_seconds=600)
    for password in ("wrong-1", "wrong-2", "wrong-3", PASSWORD):
        real = await answer(auth, "alice", password)
        unknown = await answer(auth, "nobody", password)
        assert real == unknown
    assert unknown == (
        429,
        "Too many failed attempts; try again in 10 minutes.",
        {"Retry-After": "600"},
    )
    clock.advance(599)
    assert await answer(auth, "alice", "x") == await answer(auth, "nobody", "x")
    clock.advance(1)
    assert await answer(auth, "nobody", "wrong") is None  # the lockout ends the same way
    assert store.get("nobody") is None


async def test_unknown_name_records_are_bounded(make_authenticator):
    auth = make_authenticator(allowed_failed_logins=2)
    auth.unknown_names_tracked = 2
    for name in ("ann", "ben", "cat"):
        assert await login(auth, name, "wrong") is None
    assert list(auth._unknown_failures) == ["ben", "cat"]  # ann, least recent, is forgotten
    assert await login(auth, "ann", "wrong") is None  # counted afresh
    with pytest.raises(web.HTTPError, match="Too many failed attempts"):
        await login(auth, "cat", "wrong")


async def test_the_store_is_opened_off_the_event_loop(make_authenticator, store, monkeypatch):
    opened_in = []

    class SpyStore(AccountStore):
        def __init__(self, *args, **kwargs):
            opened_in.append(threading.current_thread())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(authenticator_module, "AccountStore", SpyStore)
    add_account(store, "alice")
    await login(make_authenticator(), "alice")
    await make_authenticator().refresh_user(User())
    await make_authenticator().delete_user(User())
    assert len(opened_in) == 3
    assert threading.current_thread() not in opened_in


async def test_pending_account_is_told_to_wait_only_with_the_right_password(
    make_authenticator, store
):
    add_account(store, "newbie", authorized=False)
    auth = make_authenticator()
    with pytest.raises(web.HTTPError) as pending:
        await login(auth, "newbie")
    assert pending.value.status_code == 403
    assert "awaiting admin approval" in pending.value.log_message
    assert await login(auth, "newbie", "wrong password") is None
    store.authorize("newbie")
    assert await login(auth, "newbie") == "newbie"


async def test_old_hash_parameters_are_upgraded_at_login(make_authenticator, store):
    add_account(store, "alice", params=accounts.ScryptParams(n=8, r=1, p=1))
    auth = make_authenticator()
    assert await login(auth, "alice") == "alice"
    upgraded = store.get("alice").password_hash
    assert upgraded.startswith("scrypt$16$1$1$")
    assert accounts.verify_password(PASSWORD, upgraded)


class User:
    name = "alice"


async def test_refresh_user_ends_sessions_of_removed_accounts(make_authenticator, store):
    add_account(store, "alice")
    auth = make_authenticator()
    assert await auth.refresh_user(User()) is True
    store.delete("alice")
    assert await auth.refresh_user(User()) is False


async def test_deleting_the_hub_user_deletes_the_account(make_authenticator, store):
    add_account(store, "alice")
    auth = make_authenticator()
    await auth.delete_user(User())
    assert store.get("alice") is None
    assert await login(auth, "alice") is None


# --- store -------------------------------------------------------------------------------------


def test_create_account_refuses_duplicates(store):
    add_account(store, "alice")
    with pytest.raises(AccountExists):
        add_account(store, "alice", "another password")


def test_pending_list_authorize_and_deny(store):
    add_account(store, "ann", authorized=False)
    add_account(store, "ben", authorized=False)
    add_account(store, "cat", authorized=True)
    assert [a.username for a in store.list_pending()] == ["ann", "ben"]
    assert store.authorize("ann")
    assert store.deny("ben")
    assert not store.deny("cat")  # deny only discards pending accounts
    assert not store.authorize("nobody")
    assert store.list_pending() == []
    assert store.get("ben") is None
    assert store.get("cat").is_authorized


def test_ensure_admin_creates_once_and_never_overwrites(store):
    assert store.ensure_admin("root-admin", "first password", params=FAST) is True
    account = store.get("root-admin")
    assert account.is_authorized

    assert store.ensure_admin("root-admin", "second password", params=FAST) is False
    again = store.get("root-admin")
    assert again.password_hash == account.password_hash
    assert accounts.verify_password("first password", again.password_hash)
    assert not accounts.verify_password("second password", again.password_hash)


def test_ensure_admin_does_not_approve_someone_elses_signup(store):
    add_account(store, "chief", "attacker password", authorized=False)
    assert store.ensure_admin("chief", "admin password", params=FAST) is False
    assert not store.get("chief").is_authorized


@pytest.mark.parametrize(
    "name,password,match",
    [("Bad Name", "long enough pw", "lowercase"), ("boss", "short", "at least 8")],
)
def test_ensure_admin_validates(store, name, password, match):
    with pytest.raises(ValueError, match=match):
        store.ensure_admin(name, password, params=FAST)
    assert store.get(name) is None
