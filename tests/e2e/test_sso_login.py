"""Single sign-on on a real hub against a real OpenID Connect provider (npm oidc-provider on
loopback), driven by Chromium: group claims become hub groups and pick the profiles, a change
of groups applies at the next login, bad sign-ins get a clear page, local accounts still work,
and logging out of the hub ends the provider's session too (RP-initiated logout).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.oidc import CLIENT_ID, CLIENT_SECRET, OIDCProvider, provider_problem
from tests.ports import free_port

from .conftest import (
    api_token,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)
from .helpers import HUB_API, rest_token

LOCAL_USER, LOCAL_PASSWORD = "lee", "lee-local-password-1"
BUTTON = "Sign in with Example SSO"


@pytest.fixture(scope="module")
def sso() -> Iterator[tuple]:
    problem = provider_problem()
    if problem:
        pytest.fail(f"the OIDC provider cannot run: {problem}")
    provider = OIDCProvider(port=free_port())
    secret = Path(tempfile.mkstemp(prefix="mlf-oidc-secret-")[1])
    secret.write_text(CLIENT_SECRET)
    log = Path(tempfile.mkstemp(prefix="mlf-oidc-provider-", suffix=".log")[1])
    provider.start(log)
    config = example_config()
    config["auth"] = {
        "oidc": {
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret": {"file": str(secret)},
            "allowed_groups": ["data-science", "ml-engineering", "platform-admins"],
            "admin_groups": ["platform-admins"],
            "button_label": BUTTON,
        }
    }
    data, config_path = prepare_hub("sso", config, accounts={LOCAL_USER: LOCAL_PASSWORD})
    hub = start_hub(data, config=config_path)
    # The client's redirect URI is the hub's, known only now: start the provider again
    # with it (same issuer and port; fresh keys, which the hub fetches at the first login).
    provider.redirect_uris = [f"{hub.url}/hub/oauth_callback"]
    provider.post_logout_redirect_uris = [f"{hub.url}/hub/login"]
    provider.start(log)
    PROVIDER_PORT[:] = [provider.port]
    try:
        yield hub, provider, rest_token(hub)
    finally:
        provider.stop()
        discard_hub(hub, config_path)
        secret.unlink(missing_ok=True)
        log.unlink(missing_ok=True)


def hub_user(hub, token: str, name: str) -> dict | None:
    r = requests.get(
        f"{hub.url}{HUB_API}/users/{name}", headers={"Authorization": f"token {token}"}, timeout=60
    )
    return None if r.status_code == 404 else r.json()


def sso_login(page, hub, account: str):
    """Click the SSO button, sign in at the provider's own login page; return the hub's
    answer to the callback."""
    page.goto(f"{hub.url}/hub/login")
    page.click("#mlfactory-sso-login")
    page.wait_for_selector("input[name=login]", timeout=60_000)
    page.fill("input[name=login]", account)
    page.fill("input[name=password]", "any password (dev interactions)")
    with page.expect_response(lambda r: "/hub/oauth_callback" in r.url, timeout=60_000) as info:
        page.click("button[type=submit]")
    page.wait_for_load_state()
    return info.value


PROVIDER_PORT: list[int] = []


def provider_url(url: str) -> bool:
    return bool(PROVIDER_PORT) and urlsplit(url).port == PROVIDER_PORT[0]


def profile_cards(page, hub) -> list[str]:
    page.goto(f"{hub.url}/hub/spawn")
    page.wait_for_selector('[data-testid="mlfactory-picker"]', timeout=60_000)
    cards = page.locator('[data-testid^="profile-card-"]')
    return sorted(c.get_attribute("data-testid") for c in cards.all())


def test_login_page_offers_the_provider_and_local_accounts_still_work(sso, page):
    hub, _provider, token = sso
    page.goto(f"{hub.url}/hub/login")
    assert page.locator("#mlfactory-sso-login").inner_text().strip() == BUTTON
    assert page.locator("input[name=password]").count() == 1  # the local form stays
    log_in(page, hub, LOCAL_USER, LOCAL_PASSWORD)
    assert "/hub/login" not in page.url
    assert hub_user(hub, token, LOCAL_USER)["name"] == LOCAL_USER
    # a local account's logout stays the hub's own: back to the login page, no provider
    to_provider = []
    page.on("request", lambda r: to_provider.append(r.url) if provider_url(r.url) else None)
    page.goto(f"{hub.url}/hub/logout")
    page.wait_for_url(f"{hub.url}/hub/login**", timeout=60_000)
    assert to_provider == []


def test_group_claims_become_hub_groups_and_change_at_next_login(sso, browser):
    hub, provider, token = sso
    provider.set_account("sam", groups=["ml-engineering", "reading-club"])
    context = browser.new_context()
    page = context.new_page()
    response = sso_login(page, hub, "sam")
    assert response.status == 302, page.content()
    user = hub_user(hub, token, "sam")
    # reading-club is no group of this platform's config: it does not become a hub group
    assert sorted(user["groups"]) == ["ml-engineering"]
    assert not user["admin"]
    assert "profile-card-gpu-t4" in profile_cards(page, hub)  # ml-engineering's GPU profile
    context.close()

    # removed from ml-engineering at the provider: gone from the hub group at the next login
    provider.set_account("sam", groups=["data-science"])
    context = browser.new_context()
    page = context.new_page()
    assert sso_login(page, hub, "sam").status == 302, page.content()
    assert hub_user(hub, token, "sam")["groups"] == ["data-science"]
    group = requests.get(
        f"{hub.url}{HUB_API}/groups/ml-engineering",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    ).json()
    assert "sam" not in group["users"]
    assert profile_cards(page, hub) == [
        "profile-card-cpu-large",
        "profile-card-cpu-medium",
        "profile-card-cpu-small",
    ]
    context.close()


def test_admin_group_makes_a_hub_admin(sso, page):
    hub, provider, token = sso
    provider.set_account("ada", groups=["platform-admins"])
    assert sso_login(page, hub, "ada").status == 302, page.content()
    user = hub_user(hub, token, "ada")
    assert user["admin"] is True
    assert user["groups"] == ["platform-admins"]


@pytest.mark.parametrize(
    ("account", "setup", "message"),
    [
        ("aud", {"fault": "wrong-audience"}, "issued for another application (wrong audience)"),
        ("old", {"fault": "expired"}, "The sign-in has expired"),
        ("forged", {"fault": "foreign-key"}, "its signature is not valid"),
        ("otheriss", {"fault": "wrong-issuer"}, "another identity provider"),
        ("unver", {"email_verified": False}, "e-mail address is not verified"),
        ("outsider", {"groups": ["contractors"]}, "not in a group allowed to use this hub"),
        ("nogroups", {"groups": None}, "not in a group allowed to use this hub"),
    ],
)
def test_refused_sign_ins_get_a_clear_page(sso, page, account, setup, message):
    hub, provider, token = sso
    provider.set_account(account, **{"groups": ["data-science"], **setup})
    response = sso_login(page, hub, account)
    assert response.status == 403
    text = page.locator("body").inner_text()
    assert message in text
    assert "Traceback" not in text and "eyJ" not in text  # no internals, no token
    screenshot(page, f"sso-refused-{account}")
    assert hub_user(hub, token, account) is None
    assert "Traceback" not in hub.log()  # refused as expected, not crashed


def test_a_state_that_is_not_this_browsers_is_refused(sso, page):
    hub, provider, token = sso
    provider.set_account("mallory", groups=["data-science"])
    page.goto(f"{hub.url}/hub/oauth_login")  # this browser's login starts: its state cookie
    page.wait_for_selector("input[name=login]", timeout=60_000)
    # a callback carrying someone else's state (login CSRF) must not log this browser in
    response = page.goto(
        f"{hub.url}/hub/oauth_callback?code=stolen-code&state=eyJzdGF0ZV9pZCI6ICJ4In0"
    )
    assert response.status == 400
    assert "OAuth state mismatch" in page.locator("body").inner_text()
    assert hub_user(hub, token, "mallory") is None


def test_a_provider_name_cannot_take_a_local_account(sso, page):
    hub, provider, token = sso
    provider.set_account(LOCAL_USER, groups=["data-science"])
    response = sso_login(page, hub, LOCAL_USER)
    assert response.status == 403
    assert "belongs to a local account" in page.locator("body").inner_text()


@pytest.mark.parametrize(
    ("name", "admin", "message"),
    [
        ("pat", False, "already exists on this hub and is not linked"),
        # as JupyterHub makes every admin_users name at start (Helm: no local account)
        ("boss", True, "administrator account of this hub that is not linked"),
    ],
)
def test_an_existing_hub_user_or_admin_cannot_be_taken_over(sso, page, name, admin, message):
    hub, provider, token = sso
    r = requests.post(
        f"{hub.url}{HUB_API}/users/{name}",
        json={"admin": admin},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    # the provider's admin group would be the wrong way in too: the name alone must not do
    provider.set_account(name, groups=["data-science"])
    response = sso_login(page, hub, name)
    assert response.status == 403
    text = page.locator("body").inner_text()
    assert message in text and "An administrator must link the account" in text
    screenshot(page, f"sso-refused-existing-{name}")
    user = hub_user(hub, token, name)
    assert user["admin"] is admin
    assert not (user.get("user_info") or {}).get("oidc")  # not bound to the provider


def test_other_users_do_not_see_the_provider_identity(sso, browser):
    """No user may read another user's model (nobody holds read:users:name), and even the
    hub's own record keeps only a digest of the provider identity, never the subject."""
    hub, provider, token = sso
    provider.set_account("sol", groups=["data-science"])
    context = browser.new_context()
    assert sso_login(context.new_page(), hub, "sol").status == 302
    context.close()
    context = browser.new_context()
    page = context.new_page()
    log_in(page, hub, LOCAL_USER, LOCAL_PASSWORD)
    lee = api_token(page, hub, LOCAL_USER)
    context.close()
    r = requests.get(
        f"{hub.url}{HUB_API}/users/sol", headers={"Authorization": f"token {lee}"}, timeout=60
    )
    assert r.status_code in (403, 404), r.text  # lee may not read sol's model at all
    assert provider.issuer not in r.text
    r = requests.get(
        f"{hub.url}{HUB_API}/users/sol", headers={"Authorization": f"token {token}"}, timeout=60
    )
    assert r.status_code == 200, r.text  # what an admin (and the hub's database) holds
    binding = (r.json().get("user_info") or {}).get("oidc") or {}
    assert binding.get("hmac_sha256"), r.text  # keyed with the hub's key: not forgeable
    assert "sub" not in binding and provider.issuer not in r.text
    # what is kept (encrypted) of the sign-in: the ID token for the provider's logout, and
    # not the provider's access and refresh tokens
    assert sorted(r.json()["auth_state"]) == ["id_token", "scope"], r.text


def test_logout_ends_the_provider_session_too(sso, browser):
    hub, provider, token = sso
    provider.set_account("leo", groups=["data-science"])
    context = browser.new_context()
    page = context.new_page()
    assert sso_login(page, hub, "leo").status == 302, page.content()

    # What makes the logout matter: with only the hub's cookies gone, the provider's session
    # signs leo in again without asking (the button lands back on the hub signed in).
    context.clear_cookies(name=re.compile(r"^jupyterhub-"))
    page.goto(f"{hub.url}/hub/login")
    with page.expect_response(lambda r: "/hub/oauth_callback" in r.url, timeout=60_000) as info:
        page.click("#mlfactory-sso-login")
    assert info.value.status == 302
    page.wait_for_load_state()
    assert "/hub/login" not in page.url

    # Logout: the hub's session ends, then the provider's end-session endpoint gets the
    # client, the ID token kept in auth_state and the way back to the hub's login page.
    with page.expect_request(
        lambda r: provider_url(r.url) and "/session/end" in r.url, timeout=60_000
    ) as ended:
        page.goto(f"{hub.url}/hub/logout")
    query = parse_qs(urlsplit(ended.value.url).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["post_logout_redirect_uri"] == [f"{hub.url}/hub/login"]
    assert query["id_token_hint"][0].count(".") == 2, query  # a JWT
    # oidc-provider asks the user to confirm (its own page), then sends them back
    page.click("button[name=logout][value=yes]", timeout=60_000)
    page.wait_for_url(f"{hub.url}/hub/login**", timeout=60_000)
    screenshot(page, "sso-after-logout")
    page.goto(f"{hub.url}/hub/home")
    assert "/hub/login" in page.url  # the hub's session is gone

    # The next "Sign in with ..." asks for credentials at the provider, not a silent login
    page.goto(f"{hub.url}/hub/login")
    page.click("#mlfactory-sso-login")
    page.wait_for_selector("input[name=login]", timeout=60_000)
    assert provider_url(page.url)
    page.fill("input[name=login]", "leo")
    page.fill("input[name=password]", "any password (dev interactions)")
    with page.expect_response(lambda r: "/hub/oauth_callback" in r.url, timeout=60_000) as info:
        page.click("button[type=submit]")
    assert info.value.status == 302
    context.close()
