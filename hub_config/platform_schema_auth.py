"""The platform config's sign-in and proxy sections: ``auth.oidc`` (single sign-on through an
OpenID Connect provider) and ``proxy`` (which proxy the hub runs on one machine). Pure pydantic
models; ``platform_schema`` composes them."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .platform_schema_data import AdminCredentials
from .schema_types import _Strict


class OIDC(_Strict):
    """Single sign-on through an OpenID Connect provider (oauthenticator's
    GenericOAuthenticator). Local accounts keep working; the login page adds the provider's
    button. The client secret is read from an environment variable or a file only the hub
    reads, never written here."""

    issuer: str = Field(
        description="the provider's issuer URL; its /.well-known/openid-configuration is "
        "read when the hub starts",
    )
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: AdminCredentials = Field(
        description="{env: VAR} or {file: /path} of the hub's process holding the secret"
    )
    scopes: tuple[str, ...] = ("openid", "email", "profile", "groups")
    username_claim: str = Field("preferred_username", pattern=r"[A-Za-z0-9_.:-]{1,64}")
    groups_claim: str = Field("groups", pattern=r"[A-Za-z0-9_.:-]{1,64}")
    require_verified_email: bool = Field(
        True, description="refuse identities whose email_verified claim is not true"
    )
    allowed_groups: tuple[str, ...] = Field(
        (), description="provider groups allowed to log in (required unless allow_all)"
    )
    allow_all: bool = Field(
        False,
        description="every verified identity of the provider may log in (with a multi-tenant "
        "issuer: anyone with an account there); needed when allowed_groups is empty",
    )
    admin_groups: tuple[str, ...] = Field((), description="provider groups made hub admins")
    adopt_existing_users: bool = Field(
        False,
        description="let a provider identity sign in as an existing hub user not yet linked "
        "to the provider (admins never); off: such sign-ins are refused",
    )
    group_prefix: str = Field(
        "",
        max_length=64,
        description="provider groups starting with this become hub groups too (by default only "
        "the config's groups and the allowed and admin groups do)",
    )
    keep_all_groups: bool = Field(
        False, description="every provider group becomes a hub group (no filtering)"
    )
    button_label: str = Field("Sign in with SSO", min_length=1, max_length=80)
    callback_url: str = Field(
        "",
        description="the hub's /hub/oauth_callback as the provider sees it (default: from "
        "the request's host)",
        pattern=r"(https?://[^\s]+)?",
    )
    validate_server_cert: bool = True
    end_provider_session: bool = Field(
        True,
        description="logging out of the hub also ends the session at the provider (OpenID "
        "Connect RP-initiated logout), so the next sign-in asks for credentials again; "
        "register the hub's login page (https://<hub>/hub/login) as a post-logout redirect URI",
    )
    accept_unkeyed_bindings: bool = Field(
        True,
        description="accept, once, a provider link stored by an older mlfactory without a key "
        "and store it keyed; turn off once every SSO user has signed in again (anyone who can "
        "write the hub database could plant an unkeyed one)",
    )

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        if not re.fullmatch(r"https?://[^\s?#]+", v):
            raise ValueError(
                f"{v!r} is not an issuer URL; write it as the provider's discovery document "
                "does, e.g. 'https://login.example.org/realms/main'"
            )
        return v

    @field_validator("client_secret", mode="before")
    @classmethod
    def _not_inline(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError(
                "never write the secret here (users can read this file): use "
                "{env: VARIABLE} or {file: /path/readable/by/the/hub/only}"
            )
        return v

    @field_validator("scopes")
    @classmethod
    def _openid(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in v:
            raise ValueError("must include 'openid' (without it there is no ID token)")
        return v

    @model_validator(mode="after")
    def _someone_is_allowed_on_purpose(self) -> OIDC:
        if not self.allowed_groups and not self.allow_all:
            raise ValueError(
                "allowed_groups: name the provider groups allowed to log in, or set "
                "allow_all: true to let every verified identity of the provider in"
            )
        return self


class Proxy(_Strict):
    """The proxy in front of the hub, the servers and the services when mlfactory runs on one
    machine (on Kubernetes the Helm chart's proxy serves instead). The hub starts and stops it
    and adds a route per server and service."""

    kind: Literal["chp", "traefik"] = Field(
        "chp",
        description="'chp': configurable-http-proxy (Node), JupyterHub's default; 'traefik': "
        "Traefik v3 through jupyterhub-traefik-proxy's file provider (pip install "
        "'mlfactory[traefik]'), which spends less CPU per proxied request (see "
        "benchmarks/model_api: /predict through the hub)",
    )


class Auth(_Strict):
    oidc: OIDC | None = None
