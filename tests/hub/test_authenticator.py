"""MLFactoryAuthenticator and its account store: login, persistent lockout, approval,
bootstrap admin, and the signup/authorize/change-password pages through a real (mock) hub."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from jupyterhub import orm
from jupyterhub.tests.utils import AsyncSession, add_user, public_url
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


# --- pages through a running hub ---------------------------------------------------------------

_XSRF_INPUT = re.compile(r'name="_xsrf" value="([^"]+)"')


def form_xsrf(html: str) -> str:
    match = _XSRF_INPUT.search(html)
    assert match, "page has no _xsrf form field"
    return match.group(1)


def hub_url(app, path: str) -> str:
    return public_url(app, path=f"hub/{path}")


async def browser_login(app, name, password=PASSWORD, next_url=None):
    """Log in through the form like a browser; returns (session, POST response)."""
    s = AsyncSession()
    page = await s.get(hub_url(app, "login"))
    assert page.status_code == 200
    params = {"next": next_url} if next_url else None
    r = await s.post(
        hub_url(app, "login"),
        params=params,
        data={"_xsrf": form_xsrf(page.text), "username": name, "password": password},
        allow_redirects=False,
    )
    return s, r


async def post_form(s, app, path, data, status=200, form_page=None):
    """GET a form page (default: ``path``) for its _xsrf token, then POST ``data`` to ``path``."""
    page = await s.get(hub_url(app, form_page or path))
    assert page.status_code == 200, page.text
    r = await s.post(
        hub_url(app, path), data={"_xsrf": form_xsrf(page.text), **data}, allow_redirects=False
    )
    assert r.status_code == status, r.text
    return r


async def test_login_page_is_branded_and_links_to_signup(accounts_hub):
    app = await accounts_hub()
    r = await AsyncSession().get(hub_url(app, "login"))
    assert r.status_code == 200
    assert 'class="mlfactory-brand-name">mlfactory</h1>' in r.text
    assert f'href="{app.hub.base_url}signup">Create an account</a>' in r.text
    assert 'name="password"' in r.text  # JupyterHub's own form is still there


async def test_signup_disabled_hides_link_and_page(accounts_hub):
    app = await accounts_hub(enable_signup=False)
    s = AsyncSession()
    r = await s.get(hub_url(app, "login"))
    assert "mlfactory-brand-name" in r.text
    assert "Create an account" not in r.text
    assert (await s.get(hub_url(app, "signup"))).status_code == 404


async def test_login_page_follows_platform_template_vars(accounts_hub):
    app = await accounts_hub(
        template_vars={"mlfactory_platform_name": "acme-ml", "mlfactory_signup_enabled": False}
    )
    r = await AsyncSession().get(hub_url(app, "login"))
    assert 'class="mlfactory-brand-name">acme-ml</h1>' in r.text
    assert "Create an account" not in r.text


async def test_signup_post_without_xsrf_is_refused(accounts_hub, store):
    app = await accounts_hub()
    r = await AsyncSession().post(
        hub_url(app, "signup"),
        data={"username": "eve", "password": PASSWORD, "password_confirm": PASSWORD},
    )
    assert r.status_code == 403
    assert store.get("eve") is None


async def test_signup_shows_policy_errors_escaped(accounts_hub, store):
    app = await accounts_hub()
    s = AsyncSession()
    r = await post_form(
        s,
        app,
        "signup",
        {"username": "<script>x</script>", "password": "short", "password_confirm": "short"},
        status=400,
    )
    assert "&lt;script&gt;x&lt;/script&gt;" in r.text
    assert "<script>x</script>" not in r.text
    assert "lowercase letters" in r.text

    r = await post_form(
        s,
        app,
        "signup",
        {"username": "dave", "password": "short", "password_confirm": "shorter"},
        status=400,
    )
    assert "at least 8 characters" in r.text
    assert "do not match" in r.text
    r = await post_form(
        s,
        app,
        "signup",
        {"username": "boss", "password": PASSWORD, "password_confirm": PASSWORD},
        status=400,
    )
    assert "This username is not available." in r.text
    assert store.list_pending() == []


async def test_signup_refuses_names_the_hub_already_has(accounts_hub, store):
    app = await accounts_hub()
    add_user(app.db, app, name="hubonly")  # e.g. made on the admin page, no local account
    add_account(store, "carol")
    s = AsyncSession()
    for name in ("hubonly", "boss", "carol"):  # hub user, admin name, existing account
        r = await post_form(
            s,
            app,
            "signup",
            {"username": name, "password": PASSWORD, "password_confirm": PASSWORD},
            status=400,
        )
        assert "This username is not available. Choose another." in r.text
    assert store.get("hubonly") is None
    assert store.list_pending() == []


async def test_signups_stop_while_too_many_wait_for_approval(accounts_hub, store):
    add_account(store, "ann", authorized=False)
    app = await accounts_hub(max_pending_signups=1)
    hashed = []
    real_hash = app.authenticator.hash_password

    async def counting_hash(password):
        hashed.append(password)
        return await real_hash(password)

    app.authenticator.hash_password = counting_hash
    form = {"username": "dave", "password": PASSWORD, "password_confirm": PASSWORD}
    r = await post_form(AsyncSession(), app, "signup", form, status=429)
    assert "Too many sign-ups are waiting for approval; try again later or ask an admin." in r.text
    assert hashed == []  # refused before any hashing
    assert store.get("dave") is None

    store.authorize("ann")
    r = await post_form(AsyncSession(), app, "signup", form)
    assert "must approve it" in r.text
    assert len(hashed) == 1


async def test_handlers_open_the_store_off_the_event_loop(accounts_hub, monkeypatch):
    opened_in = []

    class SpyStore(AccountStore):
        def __init__(self, *args, **kwargs):
            opened_in.append(threading.current_thread())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(authenticator_module, "AccountStore", SpyStore)
    app = await accounts_hub()
    form = {"username": "dave", "password": PASSWORD, "password_confirm": PASSWORD}
    await post_form(AsyncSession(), app, "signup", form)
    assert len(opened_in) == 1
    assert opened_in[0] is not threading.current_thread()


async def test_signup_approval_and_login(accounts_hub, store):
    store.ensure_admin("boss", "boss password 1", params=FAST)
    add_account(store, "carol")
    app = await accounts_hub()

    # a visitor signs up: a pending account
    r = await post_form(
        AsyncSession(),
        app,
        "signup",
        {
            "username": "dave",
            "email": "dave@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    assert "must approve it" in r.text
    assert [a.username for a in store.list_pending()] == ["dave"]
    assert store.get("dave").email == "dave@example.com"

    # pending: the login form explains why
    _, r = await browser_login(app, "dave")
    assert r.status_code == 403
    assert "awaiting admin approval" in r.text
    assert 'value="dave"' in r.text

    # a non-admin cannot see or act on pending accounts
    carol, r = await browser_login(app, "carol")
    assert r.status_code == 302
    assert (await carol.get(hub_url(app, "authorize"))).status_code == 403
    own_form = await carol.get(hub_url(app, "change-password"))  # carol's valid xsrf token
    r = await carol.post(
        hub_url(app, "authorize"),
        data={"_xsrf": form_xsrf(own_form.text), "username": "dave", "action": "approve"},
    )
    assert r.status_code == 403
    assert not store.get("dave").is_authorized

    # the admin approves
    boss, r = await browser_login(app, "boss", "boss password 1")
    assert r.status_code == 302
    page = await boss.get(hub_url(app, "authorize"))
    assert '<td class="mlfactory-pending-username">dave</td>' in page.text
    r = await post_form(boss, app, "authorize", {"username": "dave", "action": "approve"})
    assert "Approved dave." in r.text
    assert store.get("dave").is_authorized

    # now dave gets in
    dave, r = await browser_login(app, "dave")
    assert r.status_code == 302
    assert "jupyterhub-hub-login" in dave.cookies


async def test_admin_discards_a_signup(accounts_hub, store):
    store.ensure_admin("boss", "boss password 1", params=FAST)
    add_account(store, "spam", authorized=False)
    app = await accounts_hub()
    boss, _ = await browser_login(app, "boss", "boss password 1")
    r = await post_form(boss, app, "authorize", {"username": "spam", "action": "discard"})
    assert "Discarded spam." in r.text
    assert store.get("spam") is None
    r = await post_form(
        boss,
        app,
        "authorize",
        {"username": "spam", "action": "approve"},
        status=404,
        form_page="change-password",  # no pending rows left, so no form on /authorize
    )
    assert "No pending account named &#39;spam&#39;." in r.text


async def test_login_ignores_offsite_next(accounts_hub, store):
    add_account(store, "carol")
    app = await accounts_hub()
    evil = "https://evil.example/steal"
    page = await AsyncSession().get(hub_url(app, "login"), params={"next": evil})
    assert page.status_code == 200
    for next_url in (evil, "//evil.example/x", "/\\evil.example"):
        _, r = await browser_login(app, "carol", next_url=next_url)
        assert r.status_code == 302
        location = urlparse(r.headers["Location"])
        assert location.netloc in ("", urlparse(public_url(app)).netloc), location
        assert "evil.example" not in location.netloc


async def test_locked_account_sees_the_wait_on_the_login_page(accounts_hub, store, clock):
    add_account(store, "carol")
    app = await accounts_hub(allowed_failed_logins=2, lockout_seconds=120)
    _, r = await browser_login(app, "carol", "wrong")
    assert r.status_code == 403
    assert "Invalid username or password" in r.text
    _, r = await browser_login(app, "carol", "wrong again")
    assert r.status_code == 429
    locked = '<p class="login_error">Too many failed attempts; try again in 2 minutes.</p>'
    _, r = await browser_login(app, "carol")
    assert r.status_code == 429
    assert locked in r.text
    assert r.headers["Retry-After"] == "120"

    # a name without an account reads exactly the same
    for password in ("wrong", "wrong again", PASSWORD):
        _, r = await browser_login(app, "nobody", password)
    assert r.status_code == 429
    assert locked in r.text
    assert r.headers["Retry-After"] == "120"

    clock.advance(120)
    _, r = await browser_login(app, "carol")
    assert r.status_code == 302


async def test_change_password(accounts_hub, store):
    add_account(store, "carol")
    app = await accounts_hub()
    assert (
        await AsyncSession().get(hub_url(app, "change-password"), allow_redirects=False)
    ).status_code == 302  # to the login page

    carol, _ = await browser_login(app, "carol")
    new = "a brand new passphrase"
    r = await post_form(
        carol,
        app,
        "change-password",
        {"old_password": "not it", "new_password": new, "new_password_confirm": new},
        status=403,
    )
    assert "current password is not correct" in r.text
    assert store.get("carol").failed_logins == 1
    r = await post_form(
        carol,
        app,
        "change-password",
        {"old_password": PASSWORD, "new_password": "carol", "new_password_confirm": "carol"},
        status=400,
    )
    assert "same as the username" in r.text
    await post_form(
        carol,
        app,
        "change-password",
        {"old_password": PASSWORD, "new_password": new, "new_password_confirm": new},
    )
    _, r = await browser_login(app, "carol")
    assert r.status_code == 403
    _, r = await browser_login(app, "carol", new)
    assert r.status_code == 302


async def test_changing_the_password_ends_the_other_sessions(accounts_hub, store):
    add_account(store, "carol")
    app = await accounts_hub()
    here, _ = await browser_login(app, "carol")
    elsewhere, _ = await browser_login(app, "carol")
    page = hub_url(app, "change-password")
    assert (await elsewhere.get(page, allow_redirects=False)).status_code == 200

    # tokens for carol's servers, as OAuth hands them out per browser session
    orm_user = orm.User.find(app.db, "carol")
    here_token = orm_user.new_api_token(session_id=here.cookies["jupyterhub-session-id"])
    elsewhere_token = orm_user.new_api_token(session_id=elsewhere.cookies["jupyterhub-session-id"])
    personal_token = orm_user.new_api_token(note="made on the token page")

    new = "a brand new passphrase"
    changed = await post_form(
        here,
        app,
        "change-password",
        {"old_password": PASSWORD, "new_password": new, "new_password_confirm": new},
    )
    assert "Your password has been changed." in changed.text

    r = await elsewhere.get(page, allow_redirects=False)
    assert r.status_code == 302
    assert "/hub/login" in r.headers["Location"]
    assert orm.APIToken.find(app.db, elsewhere_token) is None
    assert orm.APIToken.find(app.db, here_token) is not None
    assert orm.APIToken.find(app.db, personal_token) is not None

    # this browser is still logged in, and the form on the success page still posts
    third = "a third passphrase!"
    r = await here.post(
        page,
        data={
            "_xsrf": form_xsrf(changed.text),
            "old_password": new,
            "new_password": third,
            "new_password_confirm": third,
        },
        allow_redirects=False,
    )
    assert r.status_code == 200, r.text
    assert "Your password has been changed." in r.text
