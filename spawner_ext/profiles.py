"""Which profiles, images, ranges and projects a user may choose, and turning untrusted
``user_options`` into a checked, priced ``ResourceRequest``.

Pure: config, group membership and host capabilities are arguments. Every problem with
user options is a ``RequestError`` that names the option; nothing else escapes.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlfactory.hub.platform_config import (
    Adjustable,
    Group,
    Image,
    PlatformConfig,
    Profile,
    Project,
    Range,
    SizeRange,
    format_size,
    parse_size,
)
from mlfactory.spawner.gpus import gpu_type_matches
from mlfactory.spawner.pricing import hourly_price

PERSONAL = Project(name="personal", display_name="Personal")
OPTION_KEYS = ("profile", "image", "project", "cpu", "memory", "gpu")
TOLERANCE = 1e-9
# Form fields arrive as text; accept plain decimals only (no "nan", "1e9", "1_000", "٣").
_DECIMAL_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_SHOW_MAX = 40
# Image references are long ("registry.example.org/team/image:2026.11"); a refusal names
# them whole up to this length.
_SHOW_IMAGE_MAX = 100
_SHOW_TAGS = 10

# The distribution reference grammar (distribution/reference/regexp.go), ASCII only: a full
# reference in the ``image`` option must have this shape before any admin pattern is tried.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
REFERENCE_RE = re.compile(
    rf"(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    rf"(?::{TAG_RE.pattern})?(?:@sha256:[0-9a-f]{{64}})?"
)


@dataclass(frozen=True)
class HostCapabilities:
    gpu_count: int = 0  # GPUs this host can hand out
    gpu_types: frozenset[str] = frozenset()  # GPU names present; empty = unknown/any


@dataclass(frozen=True)
class UserAccess:
    groups: tuple[str, ...]  # effective configured groups (or (default_group,) when in none)
    is_admin: bool


@dataclass(frozen=True)
class ProfileChoice:
    profile: Profile
    ranges: Adjustable | None  # effective ranges for this user; None = nothing adjustable
    images: tuple[Image, ...]  # images allowed for this user with this profile
    available: bool
    reason: str | None  # why unavailable, for the user
    price_per_hour: float  # at the profile's own values


class RequestError(ValueError):
    """A user option that cannot be honoured; ``str()`` is ``"field: message"``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ResourceRequest:
    profile: str
    display_name: str
    cpu_guarantee: float
    cpu_limit: float
    mem_guarantee: int
    mem_limit: int
    gpu: int
    gpu_type: str | None
    disk: int
    image: str  # catalog slug, or the full reference an admin pattern allowed
    image_ref: str  # container image reference ("repository:tag")
    node_pool: str | None
    project: str
    price_per_hour: float
    image_tag: str | None = None  # a registry tag other than the catalog's; None = catalog's

    @property
    def image_option(self) -> str:
        """The ``image`` option that picks this image again: slug, ``slug:tag`` or reference."""
        return f"{self.image}:{self.image_tag}" if self.image_tag else self.image

    def user_options(self) -> dict[str, str | int | float]:
        """Options that resolve back to an equal request (what to save for the next spawn)."""
        return {
            "profile": self.profile,
            "image": self.image_option,
            "project": self.project,
            "cpu": _plain(self.cpu_limit),
            "memory": format_size(self.mem_limit),
            "gpu": self.gpu,
        }

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description for pages, logs and the ledger."""
        return {
            "slug": self.profile,
            "display_name": self.display_name,
            "cpu": _plain(self.cpu_limit),
            "memory": format_size(self.mem_limit),
            "gpu": self.gpu,
            "gpu_type": self.gpu_type,
            "disk": format_size(self.disk),
            "image": self.image,
            "image_ref": self.image_ref,
            "project": self.project,
            "price_per_hour": self.price_per_hour,
        }


# --- who may choose what -------------------------------------------------------------------


def user_access(config: PlatformConfig, group_names: Iterable[str], is_admin: bool) -> UserAccess:
    """The user's configured groups (config order), else the default group."""
    names = set(group_names)
    groups = tuple(g.name for g in config.groups if g.name in names)
    if not groups and config.default_group:
        groups = (config.default_group,)
    return UserAccess(groups=groups, is_admin=is_admin)


def profile_choices(
    config: PlatformConfig, access: UserAccess, host: HostCapabilities
) -> list[ProfileChoice]:
    """The profiles this user may use, in config order, each marked available or not."""
    allowed = _allowed_profiles(config, access)
    choices = []
    for profile in config.profiles:
        if profile.slug not in allowed:
            continue
        ranges = _effective_ranges(config, access, profile)
        images = _allowed_images(config, access, profile)
        reason = _unavailable_reason(profile, ranges, images, host)
        price = hourly_price(
            profile, cpu=profile.cpu, memory=profile.memory, gpu=profile.gpu, pricing=config.pricing
        )
        choices.append(ProfileChoice(profile, ranges, images, reason is None, reason, price))
    return choices


def default_profile_slug(
    config: PlatformConfig, access: UserAccess, choices: list[ProfileChoice]
) -> str | None:
    """Highest-priority group default that is available, else the config default, else the
    first available profile; None when nothing is available."""
    available = [c.profile.slug for c in choices if c.available]
    for group in _groups_by_priority(config, access):
        if group.default_profile in available:
            return group.default_profile
    if config.default_profile.slug in available:
        return config.default_profile.slug
    return available[0] if available else None


def project_choices(config: PlatformConfig, access: UserAccess) -> list[Project]:
    """The "personal" project first, then those open to everyone or to one of the user's
    groups (admins: all)."""
    mine = set(access.groups)
    return [PERSONAL] + [
        p
        for p in config.projects
        if p.name != PERSONAL.name and (access.is_admin or not p.groups or mine & set(p.groups))
    ]


def _groups_by_priority(config: PlatformConfig, access: UserAccess) -> list[Group]:
    order = {g.name: i for i, g in enumerate(config.groups)}
    groups = [g for name in set(access.groups) if (g := config.group(name)) is not None]
    return sorted(groups, key=lambda g: (-g.priority, order[g.name]))


def _allowed_profiles(config: PlatformConfig, access: UserAccess) -> set[str]:
    if access.is_admin:
        return {p.slug for p in config.profiles}
    groups = _groups_by_priority(config, access)
    if not groups:
        return {config.default_profile.slug}
    return {slug for g in groups for slug in g.profiles}


def _allowed_images(
    config: PlatformConfig, access: UserAccess, profile: Profile
) -> tuple[Image, ...]:
    images = [i for i in config.images if not profile.images or i.slug in profile.images]
    groups = _groups_by_priority(config, access)
    # A group without an images list allows every image, so it lifts the restriction.
    if access.is_admin or not groups or not all(g.images for g in groups):
        return tuple(images)
    allowed = {slug for g in groups for slug in g.images}
    return tuple(i for i in images if i.slug in allowed)


def _effective_ranges(
    config: PlatformConfig, access: UserAccess, profile: Profile
) -> Adjustable | None:
    """The profile's ranges, each narrowed by the highest-priority group that sets it."""
    own = profile.adjustable
    if own is None or access.is_admin:
        return own
    groups = _groups_by_priority(config, access)
    fields: dict[str, Range | SizeRange | None] = {}
    for name in ("cpu", "memory", "gpu"):
        base = getattr(own, name)
        overrides = (
            getattr(g.ranges[profile.slug], name) for g in groups if profile.slug in g.ranges
        )
        override = next((r for r in overrides if r is not None), None)
        fields[name] = base if base is None or override is None else _narrow(base, override)
    if all(r is None for r in fields.values()):
        return None
    return Adjustable(**fields)


def _narrow(base: Range | SizeRange, override: Range | SizeRange) -> Range | SizeRange | None:
    """The intersection; a group can only narrow. Disjoint ranges fix the value (None)."""
    lo, hi = max(base.min, override.min), min(base.max, override.max)
    if lo > hi:
        return None
    return type(base)(min=lo, max=hi, step=max(base.step, override.step))


def _gpus_needed(profile: Profile, ranges: Adjustable | None) -> int:
    if ranges is not None and ranges.gpu is not None:
        return math.ceil(ranges.gpu.min)
    return profile.gpu


def _gpu_type_ok(gpu_type: str | None, host: HostCapabilities) -> bool:
    # The allocator's own rule, so the picker never offers what allocation would refuse.
    if gpu_type is None or not host.gpu_types:
        return True
    return any(gpu_type_matches(gpu_type, name) for name in host.gpu_types)


def _unavailable_reason(
    profile: Profile, ranges: Adjustable | None, images: tuple[Image, ...], host: HostCapabilities
) -> str | None:
    need = _gpus_needed(profile, ranges)
    if need > 0 and host.gpu_count < need:
        have = "no GPUs" if host.gpu_count <= 0 else f"only {host.gpu_count}"
        return f"Needs {_gpus(need)}; this host has {have}."
    if need > 0 and not _gpu_type_ok(profile.gpu_type, host):
        return _type_reason(profile.gpu_type, host)
    if not images:
        return "No image is allowed for you with this profile."
    return None


def _type_reason(gpu_type: str | None, host: HostCapabilities) -> str:
    return f"Needs {gpu_type} GPUs; this host has {', '.join(sorted(host.gpu_types))}."


def _gpus(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


# --- image references and tags ---------------------------------------------------------------


def split_reference(reference: str) -> tuple[str, str | None]:
    """``(repository, tag)`` of an image reference, the repository with its registry host and
    without any ``@digest``; tag None when the reference names none."""
    name = reference.partition("@")[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:  # a colon before the last "/" is a registry port, not a tag
        return name[:colon], name[colon + 1 :]
    return name, None


_DIGITS = re.compile(r"([0-9]+)")


def _natural_key(tag: str) -> tuple[tuple[int, int, str], ...]:
    # Digit runs compare as numbers and sort above text, so versions lead a reversed sort.
    parts = _DIGITS.split(tag)
    return tuple((1, int(p), "") if i % 2 else (0, 0, p) for i, p in enumerate(parts) if p)


def _tag_key(tag: str) -> tuple[Any, ...]:
    # A release outranks its own suffixed tags, as SemVer ranks 1.0.0 above 1.0.0-rc1: the
    # image build pushes 0.1.0 and a 0.1.0-<digest> per build, and the release must lead.
    base, dash, suffix = tag.partition("-")
    return (_natural_key(base), not dash, _natural_key(suffix), tag)


def sort_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Valid, distinct tags, newest first in version order: 2026.12, 2026.9, 2026.1, latest;
    a release before its suffixed builds (0.1.0, then 0.1.0-3f2a…). Tags outside the
    distribution grammar are dropped: references are built from them."""
    valid = {t for t in tags if isinstance(t, str) and TAG_RE.fullmatch(t)}
    return tuple(sorted(valid, key=_tag_key, reverse=True))


def catalog_tag(image: Image) -> str:
    """The tag a catalog entry names (Docker's "latest" when it names none)."""
    return split_reference(image.image)[1] or "latest"


def with_tag(image: Image, tag: str) -> str:
    """The catalog entry's repository at another tag."""
    return f"{split_reference(image.image)[0]}:{tag}"


@functools.lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # '*' stops at '/', as in a shell glob: "registry.example.org/ds/*" allows the images
    # directly under ds/, not "registry.example.org/ds/x/y", and never another host.
    parts = ("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts))


def image_pattern_matches(pattern: str, reference: str) -> bool:
    """Whether an admin pattern (``containers.allowed_images``) allows ``reference``.

    The pattern must match the WHOLE reference (never a part of it), case-sensitively;
    ``*`` is any run of characters except ``/``, ``?`` one such character, and every other
    character is literal.
    """
    return _pattern_regex(pattern).fullmatch(reference) is not None


def image_allowed_by_pattern(config: PlatformConfig, reference: str) -> bool:
    """A full image reference an admin allows besides the catalog. No patterns: none is
    (DockerSpawner's CVE-2023-48311 accepted any image when its list was unset)."""
    if not REFERENCE_RE.fullmatch(reference):
        return False
    return any(image_pattern_matches(p, reference) for p in config.containers.allowed_images)


def _pick_image(
    config: PlatformConfig,
    choice: ProfileChoice,
    options: Mapping[str, Any],
    tags: Mapping[str, Sequence[str]] | None,
) -> tuple[str, str, str | None]:
    """``(image, image_ref, image_tag)`` for the ``image`` option; see ``resolve_request``."""
    allowed = {i.slug: i for i in choice.images}
    if "image" not in options:
        default = config.default_image.slug
        image = allowed.get(default) or choice.images[0]
        return image.slug, image.image, None
    value = options["image"]
    if isinstance(value, str):
        if value in allowed:
            return value, allowed[value].image, None
        slug, colon, tag = value.partition(":")
        if colon and tags is not None and slug in allowed:
            image = allowed[slug]
            if tag == catalog_tag(image):
                return slug, image.image, None  # the catalog's own tag, said explicitly
            known = [t for t in tags.get(slug, ()) if TAG_RE.fullmatch(t)]
            if tag in known:
                return slug, with_tag(image, tag), tag
            shown = ", ".join(dict.fromkeys([catalog_tag(image), *known[:_SHOW_TAGS]]))
            raise RequestError(
                "image",
                f"tag {_show(tag)} of {slug!r} is not in the registry; known tags: {shown}",
            )
        if image_allowed_by_pattern(config, value):
            return value, value, None
    message = f"{_cut(repr(value), _SHOW_IMAGE_MAX)} is not in the image catalog; "
    message += f"choose one of: {', '.join(allowed)}"
    if config.containers.allowed_images:
        message += f" (or an image matching {', '.join(config.containers.allowed_images)})"
    raise RequestError("image", message)


# --- resolving user options ----------------------------------------------------------------


def resolve_request(
    config: PlatformConfig,
    access: UserAccess,
    options: Mapping[str, Any],
    host: HostCapabilities,
    *,
    tags: Mapping[str, Sequence[str]] | None = None,
) -> ResourceRequest:
    """Check untrusted ``options`` against what this user may choose on this host.

    The ``image`` option is one of: a catalog slug allowed for this user and profile (the
    catalog's reference); ``slug:tag`` with a tag the registry lists for that slug in
    ``tags`` (slug -> tags; None = no registry, so no other tags), giving that tag of the
    same repository; or a full reference matching an admin pattern in
    ``containers.allowed_images``. Anything else is refused, naming it.
    """
    if not isinstance(options, Mapping):
        raise RequestError("options", f"expected a mapping of {', '.join(OPTION_KEYS)}")
    for key in options:
        if key not in OPTION_KEYS:
            field = key if isinstance(key, str) and len(key) <= _SHOW_MAX else _show(key)
            raise RequestError(field, f"unknown option; allowed: {', '.join(OPTION_KEYS)}")

    choice = _pick_profile(config, access, options, host)
    profile, ranges = choice.profile, choice.ranges
    image, image_ref, image_tag = _pick_image(config, choice, options, tags)
    project = _pick_name(
        "project",
        options,
        [p.name for p in project_choices(config, access)],
        PERSONAL.name,
        " to you",
    )

    adjustable = ranges or Adjustable()
    cpu = _choose("cpu", options, profile.cpu, adjustable.cpu, _number, _fmt_number)
    memory = int(_choose("memory", options, profile.memory, adjustable.memory, _size, _fmt_size))
    gpu_value = _choose(
        "gpu", options, profile.gpu, adjustable.gpu, _number, _fmt_number, host.gpu_count
    )
    for name, value in (("cpu", cpu), ("memory", memory)):
        if value <= 0:
            raise RequestError(name, "must be more than 0")
    if not float(gpu_value).is_integer():
        raise RequestError("gpu", f"{_fmt_number(gpu_value)} is not a whole number of GPUs")
    gpu = int(gpu_value)
    if gpu > host.gpu_count:
        have = "no GPUs" if host.gpu_count <= 0 else f"only {host.gpu_count}"
        raise RequestError("gpu", f"{_gpus(gpu)} requested; this host has {have}.")
    if gpu and not _gpu_type_ok(profile.gpu_type, host):
        raise RequestError("gpu", _type_reason(profile.gpu_type, host))

    cpu_guarantee = cpu
    if profile.cpu_guarantee is not None:
        cpu_guarantee = round(cpu * (profile.cpu_guarantee / profile.cpu), 6)
    mem_guarantee = memory
    if profile.memory_guarantee is not None and profile.memory:
        mem_guarantee = memory * profile.memory_guarantee // profile.memory
    return ResourceRequest(
        profile=profile.slug,
        display_name=profile.display_name,
        cpu_guarantee=cpu_guarantee,
        cpu_limit=cpu,
        mem_guarantee=mem_guarantee,
        mem_limit=memory,
        gpu=gpu,
        gpu_type=profile.gpu_type if gpu else None,
        disk=profile.disk,
        image=image,
        image_ref=image_ref,
        node_pool=profile.node_pool,
        project=project,
        price_per_hour=hourly_price(
            profile, cpu=cpu, memory=memory, gpu=gpu, pricing=config.pricing
        ),
        image_tag=image_tag,
    )


def _pick_profile(
    config: PlatformConfig, access: UserAccess, options: Mapping[str, Any], host: HostCapabilities
) -> ProfileChoice:
    choices = profile_choices(config, access, host)
    if "profile" in options:
        slug = options["profile"]
    else:
        slug = default_profile_slug(config, access, choices)
        if slug is None:
            reason = choices[0].reason if choices else None
            raise RequestError("profile", reason or "No profile is available to you.")
    # Unknown and not-allowed read the same: the message reveals nothing beyond the list.
    choice = next((c for c in choices if isinstance(slug, str) and c.profile.slug == slug), None)
    if choice is None:
        available = ", ".join(c.profile.slug for c in choices if c.available) or "none"
        message = f"{_show(slug)} is not available to you. Available: {available}"
        raise RequestError("profile", message)
    if not choice.available:
        raise RequestError("profile", choice.reason or "not available on this host")
    return choice


def _pick_name(
    field: str, options: Mapping[str, Any], names: list[str], default: str, scope: str
) -> str:
    if field not in options:
        return default
    value = options[field]
    if isinstance(value, str) and value in names:
        return value
    raise RequestError(
        field, f"{_show(value)} is not available{scope}. Available: {', '.join(names)}"
    )


def _choose(
    field: str,
    options: Mapping[str, Any],
    own: float,
    rng: Range | SizeRange | None,
    parse: Callable[[str, Any], float],
    fmt: Callable[[Any], str],
    cap: float | None = None,
) -> float:
    """The value for one adjustable (or fixed) field: given and checked, or the default."""
    if field not in options:
        return own if rng is None else _default_in(rng, own, cap)
    value = parse(field, options[field])
    if abs(value - own) <= TOLERANCE and (rng is None or rng.min <= own <= rng.max):
        return own  # the profile's own value, even where a range's grid misses it
    if rng is None:
        raise RequestError(field, f"fixed at {fmt(own)} for this profile")
    snapped = None
    if rng.min - TOLERANCE <= value <= rng.max + TOLERANCE:
        snapped = _on_grid(value, rng)
    if snapped is None:
        raise RequestError(
            field,
            f"{_cut(fmt(value))} is outside {fmt(rng.min)}–{fmt(rng.max)} "
            f"in steps of {fmt(rng.step)}",
        )
    return snapped


def _on_grid(value: float, rng: Range | SizeRange) -> float | None:
    """``value`` as ``min + k * step`` (float noise removed), or None when off the grid."""
    if isinstance(rng, SizeRange):
        return value if (value - rng.min) % rng.step == 0 else None
    snapped = rng.min + round((value - rng.min) / rng.step) * rng.step
    return round(snapped, 9) if abs(snapped - value) <= TOLERANCE else None


def _default_in(rng: Range | SizeRange, own: float, cap: float | None) -> float:
    """The profile's own value when the (group-narrowed, host-capped) range allows it,
    else the nearest value on the grid."""
    hi = rng.max if cap is None else min(rng.max, cap)
    if rng.min <= own <= hi:
        return own
    if own < rng.min or hi < rng.min:
        return rng.min
    top = rng.min + math.floor((hi - rng.min) / rng.step) * rng.step
    return top if isinstance(rng, SizeRange) else round(top, 9)


def _number(field: str, value: Any) -> float:
    number: float | None = None
    if isinstance(value, str) and _DECIMAL_RE.fullmatch(value.strip()):
        number = float(value.strip())
    elif isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        try:
            number = float(value)
        except OverflowError:
            number = None
    if number is None or not math.isfinite(number):
        raise RequestError(field, f"{_show(value)} is not a number; use e.g. 2")
    return number


def _size(field: str, value: Any) -> int:
    try:
        return parse_size(value)
    except (ValueError, OverflowError):
        raise RequestError(field, f"{_show(value)} is not a size; use e.g. '8Gi'") from None


def _fmt_number(value: float) -> str:
    return str(_plain(value)) if abs(value) < 1e15 else f"{value:g}"


def _fmt_size(value: float) -> str:
    return format_size(int(value))


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _show(value: Any) -> str:
    """A user-supplied value, quoted and cut short, for an error message."""
    return _cut(repr(value))


def _cut(text: str, limit: int = _SHOW_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
