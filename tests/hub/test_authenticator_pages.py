"""MLFactoryAuthenticator's pages (login, signup, approval, password change) on a running hub."""

from __future__ import annotations

import re
import threading
from urllib.parse import urlparse

from jupyterhub import orm
from jupyterhub.tests.utils import AsyncSession, add_user, public_url
from mlfactory.hub import authenticator as authenticator_module
from mlfactory.hub.account_store import AccountStore

from .test_authenticator import FAST, PASSWORD, add_account

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
