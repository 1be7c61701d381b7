"""Single sign-on through an OpenID Connect provider, next to the local accounts.

The hub keeps :class:`~.authenticator.MLFactoryAuthenticator` (the login form, signup,
lockout); :class:`LocalAndSSOAuthenticator` adds ``/hub/oauth_login`` and
``/hub/oauth_callback`` served by an oauthenticator ``GenericOAuthenticator``
(:class:`OIDCAuthenticator`) whose group claims become hub groups (``manage_groups``).
The claims themselves are judged in ``sso_claims`` (pure). The hub's ``/hub/logout`` also
ends the provider's session (OpenID Connect RP-initiated logout) for users who signed in there.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jupyterhub.crypto import CryptKeeper
from jupyterhub.handlers import LogoutHandler
from jupyterhub.utils import url_path_join
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler, OAuthLogoutHandler
from tornado import web
from traitlets import Bool, Bytes, Callable, Integer, List, Set, Unicode, default

from .authenticator import MLFactoryAuthenticator
from .platform_config import ConfigError
from .platform_schema import OIDC, AdminCredentials
from .sso_claims import (
    Identity,
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
)

# Asymmetric algorithms only: a provider's "HS256" would make the client secret the key.
SAFE_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
_KEY = "auth.oidc"
CRYPT_KEY_ENV = "JUPYTERHUB_CRYPT_KEY"


def _refused(message: str) -> web.HTTPError:
    # the hub's error page shows the reason as its heading and the message under it
    return web.HTTPError(403, message, reason="Sign-in refused")


class OIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator that also verifies the ID token (signature with the provider's
    JWKS, ``iss``, ``aud``, ``exp``) and accepts only verified identities.

    oauthenticator itself takes the user from the userinfo endpoint and never checks the ID
    token's signature or issuer; here the ID token must pass first, and userinfo must be
    about the same ``sub``.
    """

    issuer = Unicode(
        config=True,
        help="""The provider's issuer, exactly as its discovery document and ID tokens say.

        Example: ``c.OIDCAuthenticator.issuer = "https://login.example.org/realms/main"``
        """,
    )
    jwks_uri = Unicode(
        config=True,
        help="""Where the provider publishes its signing keys (discovery's ``jwks_uri``).
        Keys are cached; a token signed with an unknown key id refetches them once.""",
    )
    id_token_algorithms = List(
        Unicode(),
        list(SAFE_ALGORITHMS),
        config=True,
        help="""Signature algorithms accepted on ID tokens (asymmetric ones only).

        Example: ``c.OIDCAuthenticator.id_token_algorithms = ["RS256"]``
        """,
    )
    groups_claim = Unicode(
        "groups",
        config=True,
        help="""Claim (ID token or userinfo) with the user's groups, a list of names. Missing
        means no groups. Example: ``c.OIDCAuthenticator.groups_claim = "roles"``""",
    )
    require_verified_email = Bool(
        True,
        config=True,
        help="""Refuse identities whose ``email_verified`` claim is not exactly true.
        Turn off only for a provider that never sends it and verifies every account itself.""",
    )
    id_token_leeway = Integer(
        60,
        config=True,
        help="Seconds of clock skew allowed when checking ``exp`` and ``iat`` (default 60).",
    )
    adopt_existing_users = Bool(
        False,
        config=True,
        help="""Let a provider identity sign in as an existing hub user that no provider
        identity was bound to yet (users made through the REST API or before SSO), and bind
        it. Off by default: a provider's username alone would otherwise take over the
        account. Admins are never adopted this way, whatever this says.""",
    )
    hub_admin_users = Set(
        Unicode(),
        help="The hub's admin_users (set by LocalAndSSOAuthenticator): names never taken "
        "over by a provider identity.",
    )
    kept_groups = Set(
        Unicode(),
        config=True,
        help="""Provider groups that become hub groups (with the allowed and admin groups).
        Others are dropped unless they start with ``group_prefix`` or ``keep_all_groups``.

        Example: ``c.OIDCAuthenticator.kept_groups = {"data-science", "ml-engineering"}``
        """,
    )
    group_prefix = Unicode(
        "",
        config=True,
        help="""Provider groups starting with this also become hub groups (e.g. ``mlf-``).""",
    )
    keep_all_groups = Bool(
        False,
        config=True,
        help="Every provider group becomes a hub group (only for a provider whose groups "
        "are all meant for this hub).",
    )
    end_provider_session = Bool(
        True,
        config=True,
        help="""Logging out of the hub also ends the user's session at the provider, so the
        next "Sign in with ..." asks for their credentials again (OpenID Connect
        RP-initiated logout): ``/hub/logout`` redirects to ``end_session_endpoint`` with
        ``client_id``, the ID token as ``id_token_hint`` (kept encrypted in auth_state) and
        ``post_logout_redirect_url``, which must be registered at the provider. Off: the
        hub's logout only, or oauthenticator's ``logout_redirect_url`` if set.

        Example: ``c.OIDCAuthenticator.end_provider_session = False``
        """,
    )
    end_session_endpoint = Unicode(
        config=True,
        help="""The provider's logout endpoint (discovery's ``end_session_endpoint``). Empty:
        the provider offers none (e.g. Google), and logout ends the hub's session only.""",
    )
    post_logout_redirect_url = Unicode(
        config=True,
        help="""Where the provider sends the browser after its logout: the hub's login page as
        the provider sees it. Empty: ``<scheme>://<host><hub base>/login`` of the logout
        request. Example: ``c.OIDCAuthenticator.post_logout_redirect_url =
        "https://hub.example.org/hub/login"``""",
    )
    binding_keys = List(
        Bytes(),
        help="""Keys of the binding HMAC (``sso_claims.binding``), newest first; derived from
        the hub's encryption keys (``CryptKeeper.keys`` / ``$JUPYTERHUB_CRYPT_KEY``), so a
        key rotation there keeps old bindings valid until their next sign-in rewrites them.""",
    )

    @default("binding_keys")
    def _default_binding_keys(self) -> list[bytes]:
        return [binding_key(k) for k in CryptKeeper.instance().keys]

    accept_unkeyed_bindings = Bool(
        True,
        config=True,
        help="""Accept, once, a provider link stored by an older mlfactory (a plain digest with
        no key) and store it keyed at that sign-in. Anyone who can write the hub's database
        could plant a plain digest, so turn this off once every SSO user has signed in again.

        Example: ``c.OIDCAuthenticator.accept_unkeyed_bindings = False``
        """,
    )
    clock = Callable(help="Returns seconds since the epoch; replaced in tests.")

    @default("clock")
    def _default_clock(self):
        return time.time

    has_local_account = Callable(
        help="async (username) -> bool: whether a local account holds this name (set by "
        "LocalAndSSOAuthenticator); such names cannot be taken by a provider's identity.",
    )

    @default("has_local_account")
    def _default_has_local_account(self):
        async def never(_name: str) -> bool:
            return False

        return never

    @default("custom_403_message")
    def _default_custom_403_message(self) -> str:
        return (
            "Your account at the identity provider is not in a group allowed to use this "
            "hub. Ask an administrator to add you to one of its allowed groups."
        )

    @default("manage_groups")
    def _default_manage_groups(self) -> bool:
        return True

    _jwks_client: jwt.PyJWKClient | None = None

    def _jwks(self) -> jwt.PyJWKClient:
        if self._jwks_client is None:
            context = None if self.validate_server_cert else ssl._create_unverified_context()  # noqa: S323
            self._jwks_client = jwt.PyJWKClient(self.jwks_uri, ssl_context=context, timeout=10)
        return self._jwks_client

    async def verified_id_token(self, id_token: str) -> dict[str, Any]:
        """The ID token's claims once its signature and ``iss``/``aud``/``exp`` hold."""
        try:
            # PyJWKClient fetches with urllib: off the event loop
            key = await asyncio.to_thread(self._jwks().get_signing_key_from_jwt, id_token)
            claims = jwt.decode(
                id_token,
                key.key,
                algorithms=list(self.id_token_algorithms),
                # checked below with our clock, in sso_claims.check_id_token
                options={
                    "verify_exp": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWKClientError as e:
            self.log.warning("OIDC: no signing key for an ID token: %s", e)
            raise _refused(
                "The sign-in could not be checked: the identity provider's signing keys do "
                "not include the key it was signed with. Try again, or ask an administrator."
            ) from None
        except jwt.InvalidTokenError as e:
            self.log.warning("OIDC: ID token refused: %s", e)
            raise _refused("The sign-in was refused: its signature is not valid.") from None
        try:
            check_id_token(
                claims,
                issuer=self.issuer,
                client_id=self.client_id,
                now=self.clock(),
                leeway=self.id_token_leeway,
            )
        except Refused as e:
            self.log.warning("OIDC: ID token refused for sub %r: %s", claims.get("sub"), e)
            raise _refused(str(e)) from None
        return claims

    async def token_to_user(self, token_info: dict) -> dict:
        id_token = token_info.get("id_token")
        if not id_token:
            raise _refused(
                "The identity provider returned no ID token; the 'openid' scope must be "
                "requested (auth.oidc.scopes)."
            )
        claims = await self.verified_id_token(id_token)
        if not self.userdata_url:
            return claims
        user_info = await super().token_to_user(token_info)
        if user_info.get("sub") != claims["sub"]:
            raise _refused("The identity provider's user info is about another account.")
        # the ID token's checked claims win over userinfo's for what they both hold
        return {**user_info, **claims}

    def identity(self, user_info: Mapping[str, Any]) -> Identity:
        try:
            return read_identity(
                user_info,
                username_claim=self.username_claim,
                groups_claim=self.groups_claim,
                require_verified_email=self.require_verified_email,
            )
        except Refused as e:
            self.log.warning("OIDC: identity refused for sub %r: %s", user_info.get("sub"), e)
            raise _refused(str(e)) from None

    def user_info_to_username(self, user_info: dict) -> str:
        return self.identity(user_info).username

    async def get_user_groups(self, auth_state: dict) -> set[str]:
        groups = self.identity(auth_state[self.user_auth_state_key]).groups
        declared = frozenset(self.kept_groups | self.allowed_groups | self.admin_groups)
        return set(
            keep_groups(
                groups, declared=declared, prefix=self.group_prefix, keep_all=self.keep_all_groups
            )
        )

    async def check_allowed(self, username: str, auth_model: dict | None) -> bool:
        """oauthenticator's verdict (allowed_groups, admin_groups), refused with a page that
        says why rather than the bare "not authorized"."""
        if await super().check_allowed(username, auth_model):
            return True
        self.log.warning("OIDC: %r is in none of the allowed groups", username)
        raise _refused(self.custom_403_message)

    async def authenticate(self, handler, data=None, **kwargs):
        """oauthenticator's login, then the name must not belong to someone else: a local
        account, a hub user bound to another provider subject, or an existing hub user bound
        to none (an admin_users name, one made through the REST API), unless
        ``adopt_existing_users`` (never for admins). See ``sso_claims.check_binding``."""
        model = await super().authenticate(handler, data, **kwargs)
        name = model["name"]
        subject = self.identity(model["auth_state"][self.user_auth_state_key]).subject
        user = handler.find_user(name) if handler is not None else None
        model["user_info"] = await self.bind_identity(name, subject, user)
        # What the hub keeps (encrypted, when auth_state is on) of the sign-in: the ID token,
        # for the provider's logout, and the scopes (oauthenticator's allowed_scopes reads
        # them). Not the access and refresh tokens: nothing here calls the provider for the
        # user after the sign-in, so keeping them would only add something to lose.
        model["auth_state"] = {k: model["auth_state"].get(k) for k in ("id_token", "scope")}
        return model

    async def bind_identity(self, name: str, subject: str, user: Any) -> dict[str, Any]:
        """The ``user_info`` that binds the hub name ``name`` (``user``: that hub user, or
        None) to the provider identity ``subject``, or a 403 page saying why it may not."""
        if await self.has_local_account(name):
            self.log.warning("OIDC: %r is a local account; provider login refused", name)
            raise _refused(
                f"The username {name!r} belongs to a local account on this hub. Sign in "
                "with its password, or ask an administrator."
            )
        keys = self.binding_keys
        if not keys:
            self.log.error("OIDC: no encryption key (%s, CryptKeeper.keys)", CRYPT_KEY_ENV)
            raise web.HTTPError(
                500,
                "Single sign-on is not set up completely: the hub has no encryption key. "
                "Ask an administrator.",
            )
        previous = dict(getattr(user, "user_info", None) or {}) if user is not None else {}
        stored = stored_binding(previous.get("oidc"))
        bound = bound_here(
            stored,
            issuer=self.issuer,
            subject=subject,
            username=name,
            keys=keys,
            accept_unkeyed=self.accept_unkeyed_bindings,
        )
        try:
            check_binding(
                name,
                exists=user is not None,
                bound=bound,
                admin=bool(getattr(user, "admin", False)) or name in self.hub_admin_users,
                adopt_existing=self.adopt_existing_users,
            )
        except Refused as e:
            self.log.warning("OIDC: sign-in as existing hub user %r refused: %s", name, e)
            raise _refused(str(e)) from None
        here = binding(self.issuer, subject, name, key=keys[0])
        if stored and stored != here:
            self.log.info("OIDC: %r's provider link is stored again, under the current key", name)
        return {**previous, "oidc": here}

    async def refresh_user(self, user, handler=None, **kwargs):
        """Identity and groups are read at each sign-in, not in between (as before auth_state
        was kept): the ID token kept there is for logout, and checking it again after it
        expired would end every session at the ID token's lifetime."""
        return True

    def post_logout_url(self, handler: web.RequestHandler) -> str:
        if self.post_logout_redirect_url:
            return self.post_logout_redirect_url
        request = handler.request
        login = url_path_join(handler.hub.base_url, "login")
        return f"{request.protocol}://{request.host}{login}"

    async def provider_logout_url(self, user: Any, handler: web.RequestHandler) -> str:
        """Where ``/hub/logout`` sends ``user`` once the hub's session has ended: the
        provider's end-session endpoint (``end_provider_session``), else oauthenticator's
        ``logout_redirect_url``; "" for users who did not sign in through the provider."""
        if not (getattr(user, "user_info", None) or {}).get("oidc"):
            return ""
        if not (self.end_provider_session and self.end_session_endpoint):
            return self.logout_redirect_url
        auth_state = await user.get_auth_state() if self.enable_auth_state else None
        return end_session_url(
            self.end_session_endpoint,
            client_id=self.client_id,
            post_logout_redirect_uri=self.post_logout_url(handler),
            id_token=(auth_state or {}).get("id_token"),
        )


class _SSOHandler:
    """Serve an oauthenticator handler with the SSO authenticator instead of the hub's."""

    @property
    def authenticator(self) -> OIDCAuthenticator:
        return self.settings["authenticator"].sso


class SSOLoginHandler(_SSOHandler, OAuthLoginHandler):
    """``/hub/oauth_login``: redirect to the provider (state and PKCE cookie set)."""


class SSOCallbackHandler(_SSOHandler, OAuthCallbackHandler):
    """``/hub/oauth_callback``: check state, exchange the code, log the user in."""


class SSOLogoutHandler(OAuthLogoutHandler):
    """``/hub/logout``: the hub's logout (its cookies and session tokens, and
    oauthenticator's state cookie); a user who signed in through the provider then goes to
    the provider's end-session endpoint, which ends that session too and sends the browser
    back to the hub's login page."""

    _provider_logout = ""

    async def handle_logout(self) -> None:
        await super().handle_logout()
        user = self.current_user  # still this request's user: the hub forgets it after this
        if user is not None:
            self._provider_logout = await self.authenticator.sso.provider_logout_url(user, self)

    async def render_logout_page(self) -> None:
        if self._provider_logout:
            self.redirect(self._provider_logout)
            return
        # the hub's own logout page: oauthenticator's logout_redirect_url is the SSO side's
        # (applied above), the hub's authenticator has none for local users
        await LogoutHandler.render_logout_page(self)


class LocalAndSSOAuthenticator(MLFactoryAuthenticator):
    """Local accounts through the login form, and an OpenID Connect provider through
    ``/hub/oauth_login`` (the login page's SSO button), on the same hub.

    The provider side is an :class:`OIDCAuthenticator` configured as
    ``c.OIDCAuthenticator.*``; its group claims become the user's hub groups at each of
    their SSO logins. Hub group APIs stay open (``manage_groups`` is the SSO side's only),
    so local users keep the groups the platform config and admins give them.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sso = OIDCAuthenticator(parent=self, log=self.log)
        # Admins through the provider come from admin_groups only: a provider name equal
        # to a configured admin must not become that admin.
        self.sso.admin_users = set()
        self.sso.hub_admin_users = set(self.admin_users)
        self.sso.has_local_account = self._has_local_account
        if self.sso.end_provider_session and not self.sso.end_session_endpoint:
            self.log.warning(
                "OIDC: the provider publishes no end_session_endpoint; logging out of the hub "
                "will not end the provider's session (auth.oidc.end_provider_session)"
            )

    async def _has_local_account(self, name: str) -> bool:
        return await self.in_store(lambda store: store.get(name)) is not None

    def get_handlers(self, app):
        return super().get_handlers(app) + [
            (r"/oauth_login", SSOLoginHandler),
            (r"/oauth_callback", SSOCallbackHandler),
            # before the hub's own /logout (the authenticator's routes come first)
            (r"/logout", SSOLogoutHandler),
        ]

    async def refresh_user(self, user, handler=None):
        if (getattr(user, "user_info", None) or {}).get("oidc"):
            return await self.sso.refresh_user(user, handler)
        return await super().refresh_user(user, handler)


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""
    end_session_endpoint: str = ""
    algorithms: tuple[str, ...] = SAFE_ALGORITHMS


def parse_discovery(issuer: str, document: Any) -> ProviderMetadata:
    """Check a discovery document against the configured ``issuer``; ConfigError naming
    ``auth.oidc.issuer`` otherwise."""
    where = f"{_KEY}.issuer: {issuer}/.well-known/openid-configuration"
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: not a JSON object")
    if document.get("issuer") != issuer:
        raise ConfigError(
            f"{where}: says its issuer is {document.get('issuer')!r}; set {_KEY}.issuer to "
            "exactly that (no trailing slash unless it has one)"
        )
    missing = [
        k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(k)
    ]
    if missing:
        raise ConfigError(f"{where}: has no {', '.join(missing)}")
    offered = document.get("id_token_signing_alg_values_supported") or list(SAFE_ALGORITHMS)
    algorithms = tuple(a for a in offered if a in SAFE_ALGORITHMS)
    if not algorithms:
        raise ConfigError(
            f"{where}: signs ID tokens only with {', '.join(map(str, offered))}; mlfactory "
            f"accepts {', '.join(SAFE_ALGORITHMS)}"
        )
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        jwks_uri=document["jwks_uri"],
        userinfo_endpoint=document.get("userinfo_endpoint") or "",
        end_session_endpoint=document.get("end_session_endpoint") or "",
        algorithms=algorithms,
    )


def discover(issuer: str, *, verify: bool = True, timeout: float = 10) -> ProviderMetadata:
    """Read the provider's discovery document (at hub start, before the event loop runs)."""
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    context = None if verify else ssl._create_unverified_context()  # noqa: S323
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:  # noqa: S310
            document = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ConfigError(
            f"{_KEY}.issuer: cannot read {url} ({reason}); check the URL and that the hub "
            "can reach the provider"
        ) from None
    return parse_discovery(issuer, document)


def read_client_secret(source: AdminCredentials, env: Mapping[str, str] = os.environ) -> str:
    """The client secret from the hub's environment or a file; ConfigError with the key."""
    if source.env:
        secret = env.get(source.env, "")
        if not secret:
            raise ConfigError(
                f"{_KEY}.client_secret.env: the environment variable {source.env} is not set "
                "for the hub"
            )
        return secret
    try:
        secret = Path(source.file).read_text().strip()
    except OSError as e:
        raise ConfigError(
            f"{_KEY}.client_secret.file: cannot read {source.file} ({e.strerror})"
        ) from None
    if not secret:
        raise ConfigError(f"{_KEY}.client_secret.file: {source.file} is empty")
    return secret


def read_or_create_key(path: Path) -> str:
    """The hub's encryption key kept in ``path`` (0600), made on first use (32 random bytes,
    hex, as ``openssl rand -hex 32`` makes for ``$JUPYTERHUB_CRYPT_KEY``)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # a copied-in file may be more open than it should be
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"{_KEY}: the hub's encryption key file {path} is empty; remove it")
    return key


def use_encryption_key(c: Any, env: Mapping[str, str], key_file: Path | None) -> None:
    """Single sign-on needs the hub's encryption key: it keys the provider bindings and
    encrypts auth_state (the ID token kept for logout). It is ``$JUPYTERHUB_CRYPT_KEY`` or
    ``CryptKeeper.keys`` (the Zero to JupyterHub chart generates ``hub.config.CryptKeeper.keys``);
    on one machine, ``key_file``, made on first use next to the cookie secret."""
    if env.get(CRYPT_KEY_ENV, "").strip() or c.CryptKeeper.get("keys"):
        return
    if key_file is None:
        raise ConfigError(
            f"{_KEY}: single sign-on needs the hub's encryption key: set {CRYPT_KEY_ENV} for "
            "the hub (e.g. `openssl rand -hex 32`) or c.CryptKeeper.keys; keep it, since "
            "changing it unlinks every provider account"
        )
    # item, not attribute: on a traitlets Config, ``.keys`` is the dict method
    c.CryptKeeper["keys"] = [read_or_create_key(key_file)]


def post_logout_login_url(callback_url: str) -> str:
    """The hub's login page next to its configured ``/oauth_callback`` URL."""
    base, _, _ = callback_url.rstrip("/").rpartition("/")
    return f"{base}/login"


def apply_sso(
    c: Any,
    oidc: OIDC,
    env: Mapping[str, str] = os.environ,
    declared_groups: Iterable[str] = (),
    key_file: Path | None = None,
) -> None:
    """Switch the hub to local accounts plus SSO through ``oidc`` (the ``auth.oidc``
    section; ``declared_groups``: the config's ``groups``, kept from the provider's groups;
    ``key_file``: where one machine keeps the hub's encryption key, see
    :func:`use_encryption_key`). Reads the discovery document and the secret now, so a wrong
    issuer or a missing secret stops the hub at start with the key to fix."""
    meta = discover(oidc.issuer, verify=oidc.validate_server_cert)
    secret = read_client_secret(oidc.client_secret, env)
    use_encryption_key(c, env, key_file)
    c.JupyterHub.authenticator_class = LocalAndSSOAuthenticator
    o = c.OIDCAuthenticator
    o.issuer = meta.issuer
    o.authorize_url = meta.authorization_endpoint
    o.token_url = meta.token_endpoint
    o.userdata_url = meta.userinfo_endpoint
    o.jwks_uri = meta.jwks_uri
    o.id_token_algorithms = list(meta.algorithms)
    o.client_id = oidc.client_id
    o.client_secret = secret
    o.scope = list(oidc.scopes)
    o.username_claim = oidc.username_claim
    o.groups_claim = oidc.groups_claim
    o.require_verified_email = oidc.require_verified_email
    o.manage_groups = True
    o.allowed_groups = set(oidc.allowed_groups)
    o.admin_groups = set(oidc.admin_groups)
    # no allowed_groups: only with an explicit allow_all (the schema refuses otherwise)
    o.allow_all = oidc.allow_all
    o.adopt_existing_users = oidc.adopt_existing_users
    o.kept_groups = set(declared_groups)
    o.group_prefix = oidc.group_prefix
    o.keep_all_groups = oidc.keep_all_groups
    o.login_service = oidc.button_label
    o.validate_server_cert = oidc.validate_server_cert
    o.accept_unkeyed_bindings = oidc.accept_unkeyed_bindings
    o.end_provider_session = oidc.end_provider_session
    o.end_session_endpoint = meta.end_session_endpoint
    if oidc.end_provider_session and meta.end_session_endpoint:
        # keep the ID token (encrypted) for the provider's logout: its id_token_hint
        c.Authenticator.enable_auth_state = True
    if oidc.callback_url:
        o.oauth_callback_url = oidc.callback_url
        o.post_logout_redirect_url = post_logout_login_url(oidc.callback_url)
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars["mlfactory_sso"] = {"label": oidc.button_label}
    c.JupyterHub.template_vars = template_vars
