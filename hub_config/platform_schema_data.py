"""The platform config's data sections: ``data_stores`` (what each store is, who may use it,
where only the service finds its admin credentials) and ``data`` (audit retention, the
servers' managed identities). Pure pydantic models; ``platform_schema`` composes them."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .schema_types import Duration, Slug, _Strict

_ROLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/[A-Za-z0-9!_.*'()/-]{0,900})?")


class AdminCredentials(_Strict):
    """Where only the platform service finds a store's admin credentials: the name of an
    environment variable or a file path, never the secret itself (users can read the YAML)."""

    env: str = Field("", description="an environment variable of the service's process")
    file: str = Field("", description="an absolute path readable by the service only (0600)")

    @model_validator(mode="after")
    def _one(self) -> AdminCredentials:
        if bool(self.env) == bool(self.file):
            raise ValueError("name exactly one of env or file")
        if self.env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", self.env):
            raise ValueError(f"env: {self.env!r} is not an environment variable name")
        if self.file and not self.file.startswith("/"):
            raise ValueError(f"file: {self.file!r} must be an absolute path")
        return self


class DataGrant(_Strict):
    """What one group may do with a managed store."""

    group: Slug
    access: Literal["read", "read-write"] = "read"
    role: str = Field(
        "",
        description="postgresql: the group role holding this grant's table privileges, set "
        "up by the admin (default mlf_<store>_<read|rw>, '-' as '_')",
    )
    prefixes: tuple[str, ...] = Field(
        (), description="s3: the 'bucket' or 'bucket/prefix' this grant reaches"
    )

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v and not _ROLE_RE.fullmatch(v):
            raise ValueError(f"{v!r}: a role name is 1-63 of a-z, 0-9 and _")
        return v

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not _PREFIX_RE.fullmatch(p):
                raise ValueError(
                    f"{p!r}: use 'bucket' or 'bucket/prefix' (no wildcards at the start)"
                )
        return v


class DataStore(_Strict):
    """A data store, declared once. With ``admin_credentials`` it is *managed*: the platform
    service issues each server short-lived credentials per ``grants``; without, its URL
    alone reaches the servers of ``groups`` (no groups: everyone)."""

    name: Slug
    kind: str = Field(
        description="postgresql, s3 (managed), mysql, filesystem, http, or a plugin's kind "
        "(entry point group mlfactory.data_stores)",
        pattern=r"[a-z][a-z0-9-]{0,31}",
    )
    description: str = ""
    url: str
    groups: tuple[Slug, ...] = ()
    admin_credentials: AdminCredentials | None = None
    grants: tuple[DataGrant, ...] = ()
    ttl: Duration = Field(
        3600,
        ge=60,
        le=3600,
        description="life of issued credentials (at most 1h); renewed while the server runs",
    )
    region: str = Field("us-east-1", description="s3: the region STS and S3 are called in")
    role_arn: str = Field(
        "", description="s3: the role AssumeRole takes; each session policy narrows it"
    )

    @property
    def managed(self) -> bool:
        return self.admin_credentials is not None


class DataAudit(_Strict):
    """How long the audit of data credentials is kept: one row per credential issued (who,
    which store and server, when, what the store counted) and one per issue, renewal and
    drop. The platform service deletes older rows in small batches as part of its data
    upkeep, and logs how many it removed."""

    keep_days: int = Field(
        400,
        ge=0,
        description="days an audit row is kept after its credential was dropped (its server "
        "stopped, it expired or its grant changed) or its event happened, e.g. 400 (more "
        "than a year); 0 keeps it forever. A live credential's row is never deleted",
    )


class DataIdentity(_Strict):
    """Each running server's managed identity: a hub token scoped to that one server, minted
    by the platform service, replaced while the server runs and revoked when it stops. It is
    what a kernel shows to get data credentials (``mlfactory.data.connect``)."""

    rotate: Duration = Field(
        900,
        ge=1,
        description="how often a running server's identity is replaced, e.g. '15m' (keep it "
        "a few minutes or more in production; seconds are for tests)",
    )
    lifetime: Duration | None = Field(
        None,
        ge=2,
        description="how long one identity is valid; default twice 'rotate', so a service "
        "or hub that is down for less than one period is not noticed",
    )
    overlap: Duration = Field(
        60,
        ge=0,
        description="how long the previous identity keeps working after its replacement, "
        "for requests already under way",
    )
    accept_server_token: bool = Field(
        False,
        description="also accept a server's own long-lived hub token (JUPYTERHUB_API_TOKEN) "
        "for data credentials, as before identities rotated; off: only a rotated identity "
        "unlocks data",
    )

    @property
    def lifetime_s(self) -> int:
        return self.lifetime if self.lifetime is not None else 2 * self.rotate

    @model_validator(mode="after")
    def _fits(self) -> DataIdentity:
        if self.lifetime_s <= self.rotate:
            raise ValueError(
                f"lifetime: {self.lifetime_s}s must be longer than rotate ({self.rotate}s), "
                "or an identity expires before its replacement comes"
            )
        return self


class Data(_Strict):
    """Data connections beside the stores themselves (``data_stores``)."""

    audit: DataAudit = DataAudit()
    identity: DataIdentity = DataIdentity()
