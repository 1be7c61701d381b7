"""The platform config's schema: what a valid ``mlfactory.yaml`` holds, and its quantities.

Pure: pydantic models and the size, duration and slug parsers their fields use. Reading the
file and turning validation errors into messages for the admin is ``platform_config``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .platform_schema_auth import OIDC as OIDC
from .platform_schema_auth import Auth as Auth
from .platform_schema_auth import Proxy as Proxy
from .platform_schema_backends import Containers as Containers
from .platform_schema_backends import GpuType as GpuType
from .platform_schema_backends import Image as Image
from .platform_schema_backends import Kubernetes as Kubernetes
from .platform_schema_backends import NodePool as NodePool
from .platform_schema_backends import Registry as Registry
from .platform_schema_backends import ServiceAddress as ServiceAddress
from .platform_schema_backends import Toleration as Toleration
from .platform_schema_data import AdminCredentials as AdminCredentials
from .platform_schema_data import Data as Data
from .platform_schema_data import DataAudit as DataAudit
from .platform_schema_data import DataGrant as DataGrant
from .platform_schema_data import DataIdentity as DataIdentity
from .platform_schema_data import DataStore as DataStore
from .schema_types import Duration as Duration
from .schema_types import Size as Size
from .schema_types import Slug as Slug
from .schema_types import _Strict
from .schema_types import format_size as format_size
from .schema_types import parse_duration as parse_duration
from .schema_types import parse_size as parse_size


class Platform(_Strict):
    name: str = "mlfactory"
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    backend: Literal["auto", "local", "container", "kubernetes"] = Field(
        "auto",
        description="where servers run: 'local' (a process per server on the hub's machine), "
        "'container' (a container per server through the engine in 'containers.engine'), "
        "'kubernetes' (a pod per server through KubeSpawner; see the 'kubernetes:' section), "
        "or 'auto' (containers when that engine answers at hub start, else local processes)",
    )


class Range(_Strict):
    """A bounded, stepped choice for a number (CPUs, GPUs)."""

    min: float = Field(ge=0, allow_inf_nan=False)
    max: float = Field(ge=0, allow_inf_nan=False)
    step: float = Field(1, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class SizeRange(_Strict):
    """A bounded, stepped choice for a size (memory), in Kubernetes quantities."""

    min: Size
    max: Size
    step: Size = parse_size("1Gi")

    @model_validator(mode="after")
    def _ordered(self) -> SizeRange:
        if self.min > self.max:
            raise ValueError(
                f"min ({format_size(self.min)}) is above max ({format_size(self.max)})"
            )
        if self.step <= 0:
            raise ValueError("step must be positive")
        return self


class Adjustable(_Strict):
    """What a user may change within a profile; a missing key is fixed at the profile's value."""

    cpu: Range | None = None
    memory: SizeRange | None = None
    gpu: Range | None = None

    @field_validator("gpu")
    @classmethod
    def _whole_gpus(cls, v: Range | None) -> Range | None:
        if v is not None and not all(float(x).is_integer() for x in (v.min, v.max, v.step)):
            raise ValueError("GPUs come whole: use integer min, max and step")
        return v


class Profile(_Strict):
    slug: Slug
    display_name: str
    description: str = ""
    cpu: float = Field(gt=0, description="CPU cores (limit)")
    cpu_guarantee: float | None = Field(None, gt=0, description="CPU cores reserved; default: cpu")
    memory: Size
    memory_guarantee: Size | None = None
    gpu: int = Field(0, ge=0)
    gpu_type: str | None = None
    disk: Size = parse_size("10Gi")
    price_per_hour: float | None = Field(None, ge=0, description="fixed price; else unit pricing")
    images: tuple[Slug, ...] = ()
    node_pool: str | None = None
    adjustable: Adjustable | None = None
    default: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.gpu_type and not self.gpu and not (self.adjustable and self.adjustable.gpu):
            raise ValueError("gpu_type is set but gpu is 0; set gpu to the number of GPUs")
        if self.cpu_guarantee is not None and self.cpu_guarantee > self.cpu:
            raise ValueError(f"cpu_guarantee ({self.cpu_guarantee}) is above cpu ({self.cpu})")
        if self.memory_guarantee is not None and self.memory_guarantee > self.memory:
            raise ValueError("memory_guarantee is above memory")
        if self.adjustable and self.price_per_hour is not None:
            raise ValueError(
                "an adjustable profile is priced per unit: remove price_per_hour and set "
                "pricing: (cpu_hour, memory_gib_hour, gpu_hour)"
            )
        for name, rng in _ranges(self.adjustable):
            value = getattr(self, name)
            if not rng.min <= value <= rng.max:
                raise ValueError(
                    f"adjustable.{name}: the profile's own {name} is outside the range"
                )
        return self


def _ranges(adjustable: Adjustable | None) -> list[tuple[str, Range | SizeRange]]:
    if adjustable is None:
        return []
    return [(n, r) for n in ("cpu", "memory", "gpu") if (r := getattr(adjustable, n)) is not None]


class Pricing(_Strict):
    """Unit prices (currency per hour) for profiles without a fixed ``price_per_hour``."""

    cpu_hour: float = Field(ge=0)
    memory_gib_hour: float = Field(ge=0)
    gpu_hour: float = Field(0, ge=0)
    gpu_type_hour: dict[str, float] = Field(default_factory=dict)
    disk_gib_month: float = Field(0, ge=0, description="per GiB of disk per 730-hour month")


class Budget(_Strict):
    """A spending cap for one user, group or project, over a calendar-aligned period."""

    amount: float = Field(ge=0, allow_inf_nan=False, description="currency units per period")
    period: Literal["monthly", "weekly"] = "monthly"
    thresholds: tuple[float, ...] = Field(
        (0.5, 0.8, 1.0), description="fractions of the amount at which an alert fires once"
    )
    enforcement: Literal["alert", "block", "stop"] = Field(
        "block",
        description="alert: notify only; block: also refuse spawns that would cross it; "
        "stop: also stop running servers at 100% after a warning and the grace period",
    )
    grace: Duration = Field(900, description="warning-to-stop delay for enforcement 'stop'")
    notify: tuple[str, ...] = Field((), description="extra e-mail addresses for its alerts")

    @field_validator("thresholds")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        for t in v:
            if not 0 < t <= 1.5:
                raise ValueError(f"{t} is not a fraction of the budget; use e.g. 0.8 for 80%")
        return tuple(sorted(set(v)))


class Accounting(_Strict):
    """How the platform service charges time and answers the spawner's budget gate."""

    timezone: str = Field("UTC", description="where periods start, e.g. 'Europe/Berlin'")
    minimum_run: Duration = Field(
        3600, description="a spawn is refused when this long at its price would cross a hard budget"
    )
    when_unreachable: Literal["allow-all", "refuse-paid", "refuse-all"] = Field(
        "refuse-paid",
        description="what the budget gate does when the platform service does not answer",
    )
    interval: Duration = Field(60, description="how often running servers are charged and checked")
    orphan_grace: Duration = Field(
        600,
        description="a server process the hub does not know (e.g. left by a hub that died "
        "mid-spawn) is stopped this long after the service finds it",
    )
    database_url: str = Field(
        "", description="SQLAlchemy URL of the service's database; empty: SQLite in the data dir"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{v!r} is not a time zone; use e.g. 'UTC' or 'Europe/Berlin'"
            ) from None
        return v

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("use at least 1s")
        return v


class EmailAlerts(_Strict):
    host: str
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(description="the From: address")
    starttls: bool = False
    username: str = ""
    password_env: str = Field("", description="name of the environment variable with the password")
    admins: tuple[str, ...] = Field((), description="addresses that receive every alert")
    user_address: str = Field(
        "", description="a user's address, '{user}' replaced by the name, e.g. '{user}@corp.com'"
    )


class Alerts(_Strict):
    email: EmailAlerts | None = None
    webhooks: tuple[str, ...] = Field((), description="URLs that receive a JSON POST per alert")

    @field_validator("webhooks")
    @classmethod
    def _http(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for url in v:
            if not re.fullmatch(r"https?://[^\s]+", url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return v


class Group(_Strict):
    name: Slug
    description: str = ""
    profiles: tuple[Slug, ...]
    images: tuple[Slug, ...] = ()
    default_profile: Slug | None = None
    priority: int = Field(0, description="when a user's groups set different ranges, highest wins")
    ranges: dict[Slug, Adjustable] = Field(default_factory=dict)
    members: tuple[str, ...] = Field((), description="hub users put in this group at start-up")
    budget: Budget | None = None


class Project(_Strict):
    """A cost centre users charge their servers to; ``groups`` empty means everyone."""

    name: Slug
    display_name: str
    groups: tuple[Slug, ...] = ()
    budget: Budget | None = None


class IdleLimits(_Strict):
    """Idle-shutdown limits for one profile or one group (unset keys fall through)."""

    idle_timeout: Duration | None = Field(None, description="stop after this long idle")
    max_age: Duration | None = Field(None, description="stop this long after start; 0: never")


class Culling(_Strict):
    """Idle shutdown: what counts as idle, when to warn, when to stop."""

    enabled: bool = True
    idle_timeout: Duration = Field(3600, description="default; profiles and groups override")
    max_age: Duration = Field(0, description="stop any server this long after start; 0: never")
    warn_before: Duration = Field(600, description="warn the user this long before a stop")
    grace_after_restart: Duration = Field(
        330,
        description="after a restart or a hub outage, judge nothing for this long "
        "(activity catches up)",
    )
    every: Duration = Field(60, description="how often the policy looks at every server")
    gpu_idle_percent: float = Field(
        5, ge=0, le=100, description="GPU utilisation below this counts as idle"
    )
    keep_alive_limit: int = Field(
        3, ge=0, description="'Keep running' presses allowed per server start"
    )
    remove_named_after: Duration = Field(
        0, description="remove named servers stopped and unused this long; 0: never"
    )
    exempt_users: tuple[str, ...] = Field((), description="users an admin exempted from idle stops")
    profiles: dict[Slug, IdleLimits] = Field(default_factory=dict)
    groups: dict[Slug, IdleLimits] = Field(default_factory=dict)

    @field_validator("every")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("use at least 1s")
        return v


class Models(_Strict):
    """The model-serving service (``mlfactory.model_api``) the hub runs, and the registry
    (the platform service) that publishes into its repository."""

    serve: bool = Field(
        True,
        description="run the models service at /services/models/ (false: publish only, no serving)",
    )
    repository: str = Field(
        "",
        description="folder of published models, written by the registry and served by the "
        "models service; empty: $MLFACTORY_DATA/hub/models",
    )
    names: tuple[str, ...] = Field(
        (), description="models that get their own predict scope (the all-models one always)"
    )
    users: tuple[str, ...] = Field((), description="hub users who may predict with every model")
    groups: tuple[Slug, ...] = Field((), description="groups who may predict with every model")
    max_upload_bytes: Size = Field(
        parse_size("2Gi"), description="largest model package one publish may upload, e.g. '2Gi'"
    )
    publishers: tuple[Slug, ...] = Field(
        (),
        description="groups whose members may register new model names; empty: any user "
        "(versions of an existing model: its owner and the groups it granted)",
    )
    reload_interval: float = Field(
        2.0,
        ge=0,
        le=60,
        description="seconds between the models service's checks for new versions and moved "
        "aliases (0: only at start)",
    )


_GIT_URL_RE = re.compile(
    r"(?:https|ssh|git|file)://[^\s]+|/[^\s]*|(?:[A-Za-z0-9._][A-Za-z0-9._-]*@)?"
    r"[A-Za-z0-9.][A-Za-z0-9.-]*:[^\s/-][^\s]*"
)
_GIT_REF_RE = re.compile(r"(?!-)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])")


class ComponentSource(_Strict):
    """A git repository (``url`` and ``ref``) or a directory (``path``) of components.

    Each user's server fetches git sources itself, with hooks, filters and submodules off
    (see ``mlfactory.components.sources``, which checks the same rules again).
    """

    name: Slug
    url: str = Field("", description="https, ssh, git or file URL, user@host:path or /abs/path")
    ref: str = Field("main", description="branch, tag or commit of a git source")
    path: str = Field("", description="an absolute directory on the servers' machine")

    @field_validator("url")
    @classmethod
    def _git_url(cls, v: str) -> str:
        if v and ("::" in v or not _GIT_URL_RE.fullmatch(v)):
            raise ValueError(
                f"{v!r} is not a git URL; use https://, ssh://, git://, file://, "
                "user@host:path or an absolute path"
            )
        return v

    @field_validator("ref")
    @classmethod
    def _git_ref(cls, v: str) -> str:
        if not _GIT_REF_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a branch, tag or commit name")
        return v

    @field_validator("path")
    @classmethod
    def _abs_path(cls, v: str) -> str:
        if v and not v.startswith("/"):
            raise ValueError(f"{v!r} is not an absolute path")
        return v

    @model_validator(mode="after")
    def _url_or_path(self) -> ComponentSource:
        if bool(self.url) == bool(self.path):
            raise ValueError("give either url (a git repository) or path (a directory)")
        return self

    def env_entry(self) -> dict[str, str]:
        """What the spawner hands each server (MLFACTORY_COMPONENT_SOURCES)."""
        if self.path:
            return {"name": self.name, "path": self.path}
        return {"name": self.name, "url": self.url, "ref": self.ref}


class ReviewMaintainers(_Strict):
    users: tuple[str, ...] = Field((), description="hub users who review published components")
    groups: tuple[str, ...] = Field((), description="hub groups whose members review them")


class ComponentReview(_Strict):
    """Who approves components users publish into the shared namespace. Hub admins always
    may; the hub grants listed maintainers ``custom:mlfactory:components:review``."""

    maintainers: ReviewMaintainers = ReviewMaintainers()


class SharingWorkspaces(_Strict):
    """Workspace shares (another user works in the owner's server)."""

    realtime: bool = Field(
        True,
        description="real-time co-editing (jupyter-collaboration) in every server: people "
        "in one workspace see each other's edits and cursors; false opens documents the "
        "classic way (sets YDocExtension.disable_rtc)",
    )


class SharingRetention(_Strict):
    """How long the snapshots of ended notebook shares are kept. The audit (who shared what
    with whom, when, each version's size and SHA-256) is kept whatever this says."""

    keep_revoked: Duration | None = Field(
        parse_duration("90d"),
        description="delete the snapshots of a share this long after it was revoked or "
        "expired, e.g. '90d'; null keeps them forever, 0 deletes them at the next hourly pass",
    )


class Sharing(_Strict):
    """Notebook shares (snapshots other users preview or copy), kept by the platform service."""

    workspaces: SharingWorkspaces = SharingWorkspaces()

    max_notebook_bytes: Size = Field(
        parse_size("5Mi"), description="largest notebook that can be shared, e.g. '5Mi'"
    )
    max_recipients: int = Field(100, ge=1, le=1000, description="users and groups per share")
    groups: Literal["member", "any"] = Field(
        "member",
        description="groups a non-admin may share with: those they belong to, or any group",
    )
    users: Literal["any", "same-group"] = Field(
        "any", description="users one may share with: any hub user, or those sharing a group"
    )
    retention: SharingRetention = SharingRetention()


class PlatformConfig(_Strict):
    platform: Platform = Platform()
    profiles: tuple[Profile, ...] = Field(min_length=1)
    images: tuple[Image, ...] = Field(min_length=1)
    containers: Containers = Containers()
    kubernetes: Kubernetes | None = None
    groups: tuple[Group, ...] = ()
    default_group: Slug | None = Field(
        None, description="the group of users who are in none of the configured groups"
    )
    projects: tuple[Project, ...] = ()
    pricing: Pricing | None = None
    default_budget: Budget | None = Field(None, description="every user's own budget")
    accounting: Accounting = Accounting()
    alerts: Alerts = Alerts()
    models: Models = Models()
    culling: Culling = Culling()
    data_stores: tuple[DataStore, ...] = ()
    data: Data = Data()
    component_sources: tuple[ComponentSource, ...] = ()
    component_review: ComponentReview = ComponentReview()
    sharing: Sharing = Sharing()
    auth: Auth = Auth()
    proxy: Proxy = Proxy()

    @model_validator(mode="after")
    def _cross_references(self) -> PlatformConfig:
        problems: list[str] = []
        _unique(problems, "profiles", [p.slug for p in self.profiles])
        _unique(problems, "images", [i.slug for i in self.images])
        _unique(problems, "groups", [g.name for g in self.groups])
        profile_slugs = [p.slug for p in self.profiles]
        image_slugs = [i.slug for i in self.images]
        group_names = [g.name for g in self.groups]
        _unique(problems, "projects", [p.name for p in self.projects])
        for pi, p in enumerate(self.profiles):
            _known(problems, f"profiles[{pi}].images", p.images, image_slugs, "image")
            if p.price_per_hour is None and self.pricing is None:
                problems.append(
                    f"profiles[{pi}]: no price_per_hour and no pricing: section; set one of them"
                )
        for gi, g in enumerate(self.groups):
            _known(problems, f"groups[{gi}].profiles", g.profiles, profile_slugs, "profile")
            _known(problems, f"groups[{gi}].images", g.images, image_slugs, "image")
            if g.default_profile and g.default_profile not in g.profiles:
                problems.append(
                    f"groups[{gi}].default_profile: {g.default_profile!r} is not one of this "
                    f"group's profiles ({', '.join(g.profiles)})"
                )
            for slug in g.ranges:
                profile = self.profile(slug)
                if slug not in g.profiles or profile is None:
                    problems.append(f"groups[{gi}].ranges.{slug}: not one of this group's profiles")
                elif profile.adjustable is None:
                    problems.append(f"groups[{gi}].ranges.{slug}: the profile is not adjustable")
        if self.default_group and self.default_group not in group_names:
            problems.append(
                f"default_group: {self.default_group!r} is not a defined group; "
                f"defined: {', '.join(group_names)}"
            )
        for pi, p in enumerate(self.projects):
            _known(problems, f"projects[{pi}].groups", p.groups, group_names, "group")
        for section, names, defined in (
            ("profiles", self.culling.profiles, profile_slugs),
            ("groups", self.culling.groups, group_names),
        ):
            known = ", ".join(defined)
            problems += [
                f"culling.{section}.{n}: not a defined {section[:-1]}; defined: {known}"
                for n in names
                if n not in defined
            ]
        _unique(problems, "data_stores", [d.name for d in self.data_stores])
        for di, d in enumerate(self.data_stores):
            _known(problems, f"data_stores[{di}].groups", d.groups, group_names, "group")
            for gi, g in enumerate(d.grants):
                if g.group not in group_names:
                    problems.append(
                        f"data_stores[{di}].grants[{gi}].group: {g.group!r} is not a defined "
                        f"group; defined: {', '.join(group_names)}"
                    )
            if d.grants and not d.managed:
                problems.append(
                    f"data_stores[{di}].admin_credentials: grants need the admin credentials "
                    "the service issues credentials with ({env: VAR} or {file: /path})"
                )
        _unique(problems, "component_sources", [c.name for c in self.component_sources])
        for key, items in (("profiles", self.profiles), ("images", self.images)):
            defaults = [x.slug for x in items if x.default]
            if len(defaults) > 1:
                problems.append(f"{key}: more than one default ({', '.join(defaults)}); keep one")
        _kubernetes_references(problems, self)
        if any(p.name == "personal" for p in self.projects):
            problems.append("projects: 'personal' is built in (each user's own); pick another")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def default_profile(self) -> Profile:
        """The profile marked ``default``, else the first one."""
        return next((p for p in self.profiles if p.default), self.profiles[0])

    @property
    def default_image(self) -> Image:
        return next((i for i in self.images if i.default), self.images[0])

    def profile(self, slug: str) -> Profile | None:
        return next((p for p in self.profiles if p.slug == slug), None)

    def image(self, slug: str) -> Image | None:
        return next((i for i in self.images if i.slug == slug), None)

    def group(self, name: str) -> Group | None:
        return next((g for g in self.groups if g.name == name), None)


def _unique(problems: list[str], key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            problems.append(f"{key}[{i}]: {n!r} is defined twice; names must be unique")
        seen.add(n)


def _known(
    problems: list[str], key: str, names: Iterable[str], defined: list[str], what: str
) -> None:
    for i, n in enumerate(names):
        if n not in defined:
            problems.append(
                f"{key}[{i}]: {n!r} is not a defined {what}; defined: {', '.join(defined)}"
            )


def _kubernetes_references(problems: list[str], config: PlatformConfig) -> None:
    """Every node pool, GPU type and storage class a profile or pool names is declared in
    ``kubernetes:``: a typo would leave pods unschedulable (Pending) instead of failing here."""
    kube = config.kubernetes
    if kube is None:
        if config.platform.backend == "kubernetes":
            problems.append(
                "kubernetes: missing; platform.backend is 'kubernetes' (add the section, "
                "e.g. 'kubernetes: {namespace: mlfactory}')"
            )
        return
    pools = [p.name for p in kube.node_pools]
    gpus = [g.name for g in kube.gpu_types]
    _unique(problems, "kubernetes.node_pools", pools)
    _unique(problems, "kubernetes.gpu_types", gpus)
    for pi, p in enumerate(config.profiles):
        if p.node_pool is not None and p.node_pool not in pools:
            problems.append(
                f"profiles[{pi}].node_pool: {p.node_pool!r} is not a declared node pool; "
                f"declared in kubernetes.node_pools: {', '.join(pools) or '(none)'}"
            )
        if p.gpu_type is not None and p.gpu_type not in gpus:
            problems.append(
                f"profiles[{pi}].gpu_type: {p.gpu_type!r} is not a declared GPU type; "
                f"declared in kubernetes.gpu_types: {', '.join(gpus) or '(none)'}"
            )
    classes = list(kube.storage_classes)
    named = [("kubernetes.storage_class", kube.storage_class)] + [
        (f"kubernetes.node_pools[{i}].storage_class", p.storage_class)
        for i, p in enumerate(kube.node_pools)
    ]
    for key, name in named:
        if name is not None and name not in classes:
            problems.append(
                f"{key}: {name!r} is not a declared storage class; declared in "
                f"kubernetes.storage_classes: {', '.join(classes) or '(none)'}"
            )
