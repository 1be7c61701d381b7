"""Single sign-on: the claims verdicts (pure), the ``auth.oidc`` section, and the hub
configuration it turns into, against a real OpenID Connect provider's discovery document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from mlfactory.hub import platform_config as pc
from mlfactory.hub.platform_config import ConfigError, parse_platform_config
from mlfactory.hub.platform_schema import OIDC, AdminCredentials
from mlfactory.hub.sso import (
    LocalAndSSOAuthenticator,
    OIDCAuthenticator,
    apply_sso,
    discover,
    parse_discovery,
    post_logout_login_url,
    read_client_secret,
)
from mlfactory.hub.sso_claims import (
    Refused,
    binding,
    binding_key,
    bound_here,
    check_binding,
    check_id_token,
    end_session_url,
    keep_groups,
    read_identity,
    stored_binding,
    unkeyed_binding,
)
from traitlets.config import Config

from tests.oidc import CLIENT_ID, OIDCProvider, provider_problem
from tests.ports import free_port

ISSUER = "https://login.example.org/realms/main"
NOW = 1_800_000_000


def token(**changes) -> dict:
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "u-1", "iat": NOW - 10, "exp": NOW + 300}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def check(claims: dict, now: float = NOW) -> None:
    check_id_token(claims, issuer=ISSUER, client_id=CLIENT_ID, now=now, leeway=60)


# --- ID token claims ---------------------------------------------------------------------------


def test_a_token_for_this_client_from_this_issuer_passes():
    check(token())
    check(token(aud=[CLIENT_ID, "other"], azp=CLIENT_ID))
    check(token(exp=NOW - 30))  # within the leeway


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (token(iss="https://evil.example.org"), "another identity provider"),
        (token(iss=ISSUER + "/"), "another identity provider"),
        (token(aud="other-app"), "wrong audience"),
        (token(aud=["other-app"]), "wrong audience"),
        (token(aud=None), "wrong audience"),
        (token(aud=[CLIENT_ID, "other"]), "wrong audience"),  # several audiences, no azp
        (token(aud=[CLIENT_ID, "other"], azp="other"), "wrong audience"),
        (token(exp=NOW - 61), "expired"),
        (token(exp=None), "expired"),
        (token(exp="never"), "expired"),
        (token(exp=True), "expired"),
        (token(iat=NOW + 3600), "in the future"),
        (token(sub=None), "no subject"),
        (token(sub=""), "no subject"),
    ],
)
def test_a_token_is_refused_with_a_reason(claims, message):
    with pytest.raises(Refused, match=message):
        check(claims)


def test_expiry_follows_the_injected_clock():
    claims = token(exp=NOW)
    check(claims, now=NOW + 60)
    with pytest.raises(Refused, match="expired"):
        check(claims, now=NOW + 61)


# --- identity ----------------------------------------------------------------------------------


def identity(claims: dict, **kwargs):
    options = {"username_claim": "email", "groups_claim": "groups", "require_verified_email": True}
    return read_identity({"sub": "u-1", **claims}, **{**options, **kwargs})


def test_identity_from_verified_claims():
    found = identity(
        {"email": " sam@example.org ", "email_verified": True, "groups": ["b", "a", "a", ""]}
    )
    assert (found.username, found.subject, found.groups) == ("sam@example.org", "u-1", ("a", "b"))


@pytest.mark.parametrize("verified", [False, None, "true", 1])
def test_an_unverified_email_is_refused_even_as_the_username(verified):
    claims = {"email": "boss@example.org", "groups": ["admins"]}
    if verified is not None:
        claims["email_verified"] = verified
    with pytest.raises(Refused, match="not verified"):
        identity(claims)
    with pytest.raises(Refused, match="not verified"):  # whatever claim names the user
        identity({**claims, "preferred_username": "boss"}, username_claim="preferred_username")


def test_verification_can_be_switched_off_for_providers_without_the_claim():
    assert identity({"email": "x@example.org"}, require_verified_email=False).username == (
        "x@example.org"
    )


def test_a_missing_groups_claim_is_no_groups_never_all():
    assert identity({"email": "x@example.org", "email_verified": True}).groups == ()


@pytest.mark.parametrize("groups", ["admins", [1, 2], {"a": 1}, ["a", None]])
def test_a_malformed_groups_claim_is_refused(groups):
    with pytest.raises(Refused, match="not a list of group names"):
        identity({"email": "x@example.org", "email_verified": True, "groups": groups})


@pytest.mark.parametrize("value", [None, "", "  ", 42])
def test_a_missing_username_claim_is_refused(value):
    claims = {"email_verified": True}
    if value is not None:
        claims["email"] = value
    with pytest.raises(Refused, match="'email'"):
        identity(claims)


# --- who may take which hub name --------------------------------------------------------------


def bind(**kwargs) -> None:
    options = {"exists": True, "bound": None, "admin": False, "adopt_existing": False}
    check_binding("pat", **{**options, **kwargs})


def test_a_new_name_or_the_same_identity_signs_in():
    bind(exists=False)
    bind(bound=True)
    bind(bound=True, admin=True)  # an admin made by SSO signs in again


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bound": False}, "belongs to another account"),
        ({"bound": False, "adopt_existing": True}, "belongs to another account"),
        ({}, "not linked to the identity provider"),  # made through the REST API
        ({"admin": True}, "administrator account"),  # an admin_users name
        ({"admin": True, "adopt_existing": True}, "administrator account"),  # never adopted
    ],
)
def test_an_existing_name_is_not_taken_over(changes, message):
    with pytest.raises(Refused, match=message):
        bind(**changes)


def test_existing_users_are_adopted_only_when_the_config_says_so():
    bind(adopt_existing=True)


KEY = binding_key(bytes(range(32)))
OLD_KEY = binding_key(bytes(range(1, 33)))


def matches(stored, *, sub="u-1", name="pat", keys=(KEY,), accept_unkeyed=True):
    return bound_here(
        stored_binding(stored),
        issuer=ISSUER,
        subject=sub,
        username=name,
        keys=list(keys),
        accept_unkeyed=accept_unkeyed,
    )


def test_the_binding_is_keyed_and_holds_neither_issuer_nor_subject():
    stored = binding(ISSUER, "u-1", "pat", key=KEY)
    assert "u-1" not in str(stored) and ISSUER not in str(stored)
    assert matches(stored) is True
    assert matches(None) is None and matches({}) is None
    assert matches(stored, sub="u-2") is False  # another identity of the provider
    # without the key nobody computes it: the same identity under another key is no match
    assert binding(ISSUER, "u-1", "pat", key=OLD_KEY) != stored
    assert matches(binding(ISSUER, "u-1", "pat", key=OLD_KEY)) is False


def test_a_binding_copied_from_another_users_row_does_not_match():
    # pat's own row, copied onto the user "boss": pat's identity claiming the name boss fails
    assert matches(binding(ISSUER, "u-1", "pat", key=KEY), name="boss") is False


def test_a_binding_under_an_older_key_still_matches_after_a_rotation():
    assert matches(binding(ISSUER, "u-1", "pat", key=OLD_KEY), keys=(KEY, OLD_KEY)) is True


def test_an_unkeyed_binding_of_older_hubs_matches_only_while_accepted():
    old = unkeyed_binding(ISSUER, "u-1")
    assert matches(old) is True
    assert matches({"iss": ISSUER, "sub": "u-1"}) is True  # as the oldest hubs kept it
    assert matches(old, sub="u-2") is False
    assert matches(old, accept_unkeyed=False) is False
    # a plain digest planted by whoever can write the database, once no longer accepted
    assert matches(unkeyed_binding(ISSUER, "u-9"), sub="u-9", accept_unkeyed=False) is False


def test_end_session_url_carries_the_logout_parameters():
    url = end_session_url(
        "https://login.example.org/logout?p=policy&client_id=spoof",
        client_id="hub",
        post_logout_redirect_uri="https://hub.example.org/hub/login",
        id_token="eyJ.a.b",
    )
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "login.example.org", "/logout")
    assert parse_qs(parts.query) == {
        "p": ["policy"],
        "client_id": ["hub"],
        "post_logout_redirect_uri": ["https://hub.example.org/hub/login"],
        "id_token_hint": ["eyJ.a.b"],
    }
    bare = end_session_url("https://l/x", client_id="hub", post_logout_redirect_uri="https://h/")
    assert "id_token_hint" not in bare


def test_the_post_logout_url_is_the_login_page_next_to_the_callback():
    assert post_logout_login_url("https://hub.example.org/hub/oauth_callback") == (
        "https://hub.example.org/hub/login"
    )


# --- which provider groups become hub groups ---------------------------------------------------

GROUPS = ("data-science", "mlf-vision", "tenant-b-admins", "reading-club")


def test_only_declared_groups_become_hub_groups_by_default():
    declared = frozenset({"data-science", "ops"})
    assert keep_groups(GROUPS, declared=declared) == ("data-science",)
    assert keep_groups(GROUPS, declared=frozenset()) == ()


def test_a_prefix_or_keep_all_widens_the_groups_kept():
    declared = frozenset({"data-science"})
    assert keep_groups(GROUPS, declared=declared, prefix="mlf-") == ("data-science", "mlf-vision")
    assert keep_groups(GROUPS, declared=declared, keep_all=True) == GROUPS


async def test_the_authenticator_keeps_config_allowed_and_admin_groups():
    c = Config()
    c.OIDCAuthenticator.kept_groups = {"reading-club"}
    c.OIDCAuthenticator.allowed_groups = {"data-science"}
    c.OIDCAuthenticator.admin_groups = {"ops"}
    c.OIDCAuthenticator.username_claim = "email"
    sso = LocalAndSSOAuthenticator(config=c).sso
    claims = {"sub": "1", "email": "a@x", "email_verified": True}
    claims["groups"] = ["ops", "data-science", "reading-club", "tenant-b"]
    groups = await sso.get_user_groups({sso.user_auth_state_key: claims})
    assert groups == {"ops", "data-science", "reading-club"}


# --- the login page ----------------------------------------------------------------------------


def test_the_sso_link_carries_next_url_encoded():
    import jinja2

    templates = Path(pc.__file__).with_name("templates")
    base = "{% block login_container %}{% endblock login_container %}"
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(str(templates)),
                jinja2.DictLoader({"templates/login.html": base}),
            ]
        ),
        autoescape=True,
    )
    html = env.get_template("login.html").render(
        base_url="/hub/",
        next="/hub/spawn?profile=a&evil=1#frag",
        mlfactory_sso={"label": "SSO"},
        login_service=None,
        authenticator=None,
    )
    href = re.search(r'href="([^"]*)"', html.split("mlfactory-sso-login")[1]).group(1)
    assert href == "/hub/oauth_login?next=/hub/spawn%3Fprofile%3Da%26evil%3D1%23frag"


# --- the auth.oidc section ---------------------------------------------------------------------


@pytest.fixture
def example() -> dict:
    return yaml.safe_load(Path(pc.__file__).with_name("mlfactory.yaml").read_text())


def section(**changes) -> dict:
    oidc = {
        "issuer": ISSUER,
        "client_id": "hub",
        "client_secret": {"env": "OIDC_SECRET"},
        "allowed_groups": ["data-science"],
    }
    oidc.update(changes)
    return {"oidc": oidc}


def test_someone_must_be_allowed_on_purpose(example):
    example["auth"] = section(allowed_groups=[])
    with pytest.raises(ConfigError) as info:
        parse_platform_config(example)
    assert "auth.oidc" in str(info.value) and "allow_all: true" in str(info.value)
    example["auth"] = section(allowed_groups=[], allow_all=True)
    assert parse_platform_config(example).auth.oidc.allow_all is True


def test_the_example_has_no_sso_and_a_full_section_parses(example):
    assert parse_platform_config(example).auth.oidc is None
    example["auth"] = section(allowed_groups=["data-science"], admin_groups=["ops"])
    oidc = parse_platform_config(example).auth.oidc
    assert oidc.require_verified_email is True
    assert oidc.allowed_groups == ("data-science",) and oidc.admin_groups == ("ops",)


@pytest.mark.parametrize(
    ("changes", "key", "hint"),
    [
        ({"issuer": "login.example.org"}, "auth.oidc.issuer", "not an issuer URL"),
        ({"client_secret": "inline-secret"}, "auth.oidc.client_secret", "never write the secret"),
        ({"client_secret": {"env": "A", "file": "/x"}}, "auth.oidc.client_secret", "exactly one"),
        ({"client_secret": {"file": "relative"}}, "auth.oidc.client_secret", "absolute"),
        ({"scopes": ["email"]}, "auth.oidc.scopes", "openid"),
        ({"client_id": ""}, "auth.oidc.client_id", ""),
        ({"unknown": 1}, "auth.oidc.unknown", ""),
    ],
)
def test_bad_values_are_reported_with_their_key_path(example, changes, key, hint):
    example["auth"] = section(**changes)
    with pytest.raises(ConfigError) as info:
        parse_platform_config(example)
    text = str(info.value)
    assert key in text
    assert hint in text


def test_the_secret_comes_from_the_environment_or_a_file(tmp_path):
    assert read_client_secret(AdminCredentials(env="S"), {"S": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match=r"auth\.oidc\.client_secret\.env: .*S is not set"):
        read_client_secret(AdminCredentials(env="S"), {})
    path = tmp_path / "secret"
    path.write_text("from-file\n")
    assert read_client_secret(AdminCredentials(file=str(path))) == "from-file"
    with pytest.raises(ConfigError, match=r"auth\.oidc\.client_secret\.file: cannot read"):
        read_client_secret(AdminCredentials(file=str(tmp_path / "missing")))
    path.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        read_client_secret(AdminCredentials(file=str(path)))


DISCOVERY = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/auth",
    "token_endpoint": f"{ISSUER}/token",
    "jwks_uri": f"{ISSUER}/jwks",
    "id_token_signing_alg_values_supported": ["HS256", "RS256"],
}


def test_discovery_keeps_asymmetric_algorithms_only():
    meta = parse_discovery(ISSUER, DISCOVERY)
    assert meta.algorithms == ("RS256",)
    assert meta.userinfo_endpoint == ""


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**DISCOVERY, "issuer": ISSUER + "/"}, "says its issuer is"),
        ({k: v for k, v in DISCOVERY.items() if k != "jwks_uri"}, "has no jwks_uri"),
        ({**DISCOVERY, "id_token_signing_alg_values_supported": ["HS256"]}, "signs ID tokens"),
        (["not", "an", "object"], "not a JSON object"),
    ],
)
def test_a_bad_discovery_document_names_the_issuer_key(document, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_discovery(ISSUER, document)
    assert str(info.value).startswith("auth.oidc.issuer:")


def test_an_unreachable_issuer_stops_the_hub_with_the_key():
    with pytest.raises(ConfigError, match=r"^auth\.oidc\.issuer: cannot read http://127"):
        discover(f"http://127.0.0.1:{free_port()}", timeout=5)


# --- against the real provider -----------------------------------------------------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    problem = provider_problem()
    if problem:
        pytest.fail(f"the OIDC provider cannot run: {problem}")
    p = OIDCProvider(port=free_port())
    p.start(tmp_path_factory.mktemp("oidc") / "provider.log")
    yield p
    p.stop()


def test_apply_sso_configures_generic_oauthenticator_from_discovery(provider, tmp_path):
    c = Config()
    oidc = OIDC(
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret=AdminCredentials(env="OIDC_SECRET"),
        allowed_groups=("data-science",),
        admin_groups=("ops",),
        button_label="Sign in with Example",
    )
    key_file = tmp_path / "jupyterhub_crypt_key"
    apply_sso(c, oidc, {"OIDC_SECRET": "the-secret"}, key_file=key_file)
    assert c.JupyterHub.authenticator_class is LocalAndSSOAuthenticator
    # the hub's encryption key, made once and private: it keys the bindings, encrypts
    # auth_state (the ID token kept for the provider's logout) and survives a restart
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert c.CryptKeeper["keys"] == [key_file.read_text()] and len(key_file.read_text()) == 64
    again = Config()
    apply_sso(again, oidc, {"OIDC_SECRET": "the-secret"}, key_file=key_file)
    assert again.CryptKeeper["keys"] == c.CryptKeeper["keys"]
    assert c.Authenticator.enable_auth_state is True
    assert c.JupyterHub.template_vars["mlfactory_sso"] == {"label": "Sign in with Example"}
    auth = LocalAndSSOAuthenticator(config=c)
    sso = auth.sso
    assert isinstance(sso, OIDCAuthenticator)
    assert sso.token_url == f"{provider.issuer}/token"
    assert sso.userdata_url == f"{provider.issuer}/me"
    assert sso.jwks_uri == f"{provider.issuer}/jwks"
    assert sso.client_secret == "the-secret"
    assert sso.manage_groups is True
    assert sso.end_session_endpoint == f"{provider.issuer}/session/end"
    assert sso.end_provider_session is True and sso.enable_auth_state is True
    assert (sso.allowed_groups, sso.admin_groups, sso.allow_all) == (
        {"data-science"},
        {"ops"},
        False,
    )
    assert not auth.manage_groups  # the hub's group APIs stay open for local users
    paths = [route[0] for route in auth.get_handlers(None)]
    assert "/oauth_login" in paths and "/oauth_callback" in paths and "/signup" in paths
    assert "/logout" in paths  # comes before the hub's own /logout


def test_without_provider_logout_auth_state_stays_off(provider, tmp_path):
    c = Config()
    oidc = OIDC(
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret=AdminCredentials(env="S"),
        allow_all=True,
        end_provider_session=False,
        callback_url="https://hub.example.org/hub/oauth_callback",
    )
    apply_sso(c, oidc, {"S": "x", "JUPYTERHUB_CRYPT_KEY": "ab" * 32}, key_file=tmp_path / "k")
    assert not c.Authenticator.get("enable_auth_state")
    assert not (tmp_path / "k").exists()  # $JUPYTERHUB_CRYPT_KEY is the key
    sso = LocalAndSSOAuthenticator(config=c).sso
    assert sso.end_provider_session is False
    assert sso.post_logout_redirect_url == "https://hub.example.org/hub/login"


def test_without_an_encryption_key_sso_stops_the_hub_with_what_to_set(provider):
    oidc = OIDC(
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret=AdminCredentials(env="S"),
        allow_all=True,
    )
    with pytest.raises(ConfigError, match=r"^auth\.oidc: .*JUPYTERHUB_CRYPT_KEY"):
        apply_sso(Config(), oidc, {"S": "x"})


def test_admin_users_do_not_apply_to_provider_identities():
    c = Config()
    c.Authenticator.admin_users = {"admin"}
    auth = LocalAndSSOAuthenticator(config=c)
    assert auth.admin_users == {"admin"}
    assert auth.sso.admin_users == set()


async def test_sessions_of_provider_users_are_not_judged_by_the_local_store(tmp_path):
    """A provider identity has no local account: the local check must not end its session,
    while a hub user that is neither a local account nor a provider identity is logged out."""
    from types import SimpleNamespace

    c = Config()
    c.MLFactoryAuthenticator.accounts_db_url = f"sqlite:///{tmp_path / 'accounts.sqlite'}"
    auth = LocalAndSSOAuthenticator(config=c)
    provider_user = SimpleNamespace(name="sam", user_info={"oidc": {"iss": ISSUER, "sub": "1"}})
    stranger = SimpleNamespace(name="sam", user_info=None)
    assert await auth.refresh_user(provider_user) is True
    assert await auth.refresh_user(stranger) is False


def sso_side(tmp_path, **traits):
    c = Config()
    c.MLFactoryAuthenticator.accounts_db_url = f"sqlite:///{tmp_path / 'accounts.sqlite'}"
    c.OIDCAuthenticator.issuer = ISSUER
    sso = LocalAndSSOAuthenticator(config=c).sso
    for name, value in traits.items():
        setattr(sso, name, value)
    return sso


async def test_an_unkeyed_binding_works_once_and_is_stored_keyed(tmp_path):
    """A user linked by an older hub signs in: accepted, and the link is stored keyed; from
    then on only the keyed one is there, so the plain digest never has to be accepted."""
    from types import SimpleNamespace

    sso = sso_side(tmp_path, binding_keys=[KEY])
    old = {"oidc": unkeyed_binding(ISSUER, "u-1")}
    user = SimpleNamespace(name="pat", admin=False, user_info=old)
    info = await sso.bind_identity("pat", "u-1", user)
    assert info["oidc"] == binding(ISSUER, "u-1", "pat", key=KEY)
    user.user_info = info
    assert (await sso.bind_identity("pat", "u-1", user))["oidc"] == info["oidc"]
    with pytest.raises(Exception, match="belongs to another account"):
        await sso.bind_identity("pat", "u-2", user)


async def test_with_unkeyed_bindings_refused_a_planted_digest_takes_nothing(tmp_path):
    from types import SimpleNamespace

    sso = sso_side(tmp_path, binding_keys=[KEY], accept_unkeyed_bindings=False)
    planted = {"oidc": unkeyed_binding(ISSUER, "x")}
    boss = SimpleNamespace(name="boss", admin=True, user_info=planted)
    with pytest.raises(Exception, match="belongs to another account"):
        await sso.bind_identity("boss", "x", boss)


async def test_a_rotated_key_rewrites_the_binding_under_the_new_one(tmp_path):
    from types import SimpleNamespace

    sso = sso_side(tmp_path, binding_keys=[KEY, OLD_KEY])
    old = {"oidc": binding(ISSUER, "u-1", "pat", key=OLD_KEY)}
    user = SimpleNamespace(name="pat", admin=False, user_info=old)
    info = await sso.bind_identity("pat", "u-1", user)
    assert info["oidc"] == binding(ISSUER, "u-1", "pat", key=KEY)
