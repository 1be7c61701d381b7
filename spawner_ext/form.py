"""The spawn page's data: from a user's profile choices to the picker's view model.

Pure: takes what the resolver allowed, what the user chose last time and what this
host can enforce, and returns the ``PickerView`` that ``picker.render_picker`` shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlfactory.hub.platform_config import Image, PlatformConfig, Project

from .picker import ImageView, PickerView, ProfileCard, RangeView
from .pricing import disk_hourly
from .profiles import (
    HostCapabilities,
    ProfileChoice,
    RequestError,
    ResourceRequest,
    UserAccess,
    catalog_tag,
    default_profile_slug,
    profile_choices,
    project_choices,
    resolve_request,
    sort_tags,
)

GIB = 2**30
# A registry may hold hundreds of tags; the picker offers the newest (plus the catalog's own
# and the remembered one). Older tags still resolve when named in a REST request.
MAX_TAGS_SHOWN = 30


@dataclass(frozen=True)
class Enforcement:
    """What this host enforces; anything else is shown to the user as advisory."""

    cpu: bool
    memory: bool
    disk: bool = False
    gpu: bool = False  # devices are assigned by CUDA_VISIBLE_DEVICES, not a device cgroup


def advisory_notes(enforcement: Enforcement) -> tuple[str, ...]:
    notes = []
    if not enforcement.cpu:
        notes.append("CPU limit is advisory on this host")
    if not enforcement.memory:
        notes.append("Memory limit is advisory on this host")
    if not enforcement.disk:
        notes.append("Disk size is advisory on this host")
    return tuple(notes)


GPU_ADVISORY = "GPU assignment is advisory on this host (CUDA_VISIBLE_DEVICES only)"


def _uses_gpus(choice: ProfileChoice) -> bool:
    return bool(choice.profile.gpu or (choice.ranges and choice.ranges.gpu))


def _ranges(
    choice: ProfileChoice, values: Mapping[str, float], gpu_cap: int | None = None
) -> dict[str, RangeView]:
    """The card's ranges: the user's (group-narrowed) ranges, GPUs also capped at what the
    host has (``gpu_cap``), since the resolver refuses more GPUs than the host has."""
    out: dict[str, RangeView] = {}
    if choice.ranges is None:
        return out
    profile = choice.profile
    if choice.ranges.cpu:
        r = choice.ranges.cpu
        out["cpu"] = RangeView(r.min, r.max, r.step, values.get("cpu", profile.cpu), "cores")
    if choice.ranges.memory:
        r = choice.ranges.memory
        value = values.get("memory", profile.memory / GIB)
        out["memory"] = RangeView(r.min / GIB, r.max / GIB, r.step / GIB, value, "GiB")
    if choice.ranges.gpu:
        r = choice.ranges.gpu
        top = r.max
        if gpu_cap is not None and r.min <= gpu_cap < r.max:
            top = r.min + (gpu_cap - r.min) // r.step * r.step  # the last step within the cap
        out["gpu"] = RangeView(r.min, top, r.step, values.get("gpu", profile.gpu), "GPUs")
    return out


def _unit_prices(config: PlatformConfig, choice: ProfileChoice) -> dict[str, float] | None:
    profile, pricing = choice.profile, config.pricing
    if profile.price_per_hour is not None or pricing is None:
        return None
    per_gpu = pricing.gpu_type_hour.get(profile.gpu_type or "", pricing.gpu_hour)
    return {
        "cpu": pricing.cpu_hour,
        "memory": pricing.memory_gib_hour,
        "gpu": per_gpu,
        "base": disk_hourly(profile.disk, pricing),
    }


def _image_view(
    image: Image, tags: Mapping[str, Sequence[str]] | None, remembered_tag: str | None
) -> ImageView:
    """An image with the tags to offer; without a registry (``tags`` None), no tag choice."""
    if tags is None:
        return ImageView(image.slug, image.display_name, image.description)
    own = catalog_tag(image)
    listed = tags.get(image.slug)  # None: not in the configured registry, or never listed
    offered = list(sort_tags(listed or ())[:MAX_TAGS_SHOWN])
    for extra in (own, remembered_tag):
        if extra and extra not in offered:
            offered.append(extra)
    shown = sort_tags(offered)
    if own not in shown:  # a catalog tag outside the grammar: still the admin's choice
        shown = (*shown, own)
    return ImageView(
        image.slug,
        image.display_name,
        image.description,
        tags=shown,
        default_tag=own,
        default_in_registry=listed is None or own in listed,
    )


def remembered_values(previous: Mapping[str, Any], slug: str) -> dict[str, float]:
    """The cpu/memory(GiB)/gpu a user picked last time for ``slug``, as numbers."""
    if previous.get("profile") != slug:
        return {}
    values: dict[str, float] = {}
    for key in ("cpu", "gpu"):
        try:
            values[key] = float(previous[key])
        except (KeyError, TypeError, ValueError):
            pass
    memory = str(previous.get("memory", ""))
    if memory.endswith("Gi"):
        try:
            values["memory"] = float(memory[:-2])
        except ValueError:
            pass
    return values


def picker_view(
    *,
    config: PlatformConfig,
    choices: Sequence[ProfileChoice],
    projects: Sequence[Project],
    default_slug: str | None,
    previous: ResourceRequest | None,
    previous_error: RequestError | None,
    previous_options: Mapping[str, Any],
    enforcement: Enforcement,
    budget_text: str = "No budget set",
    tags: Mapping[str, Sequence[str]] | None = None,
    tags_note: str | None = None,
    gpu_cap: int | None = None,
) -> PickerView:
    """Build the picker for one user.

    ``previous`` is the last choice resolved again under today's rules; when that failed
    (``previous_error``), the default is selected and the user is told why. ``tags`` (catalog
    slug -> registry tags; None = no registry) gives each image a tag choice; ``tags_note``
    says why they may be out of date. ``gpu_cap`` (the host's GPU count; None = no cap) caps
    the GPU ranges shown, as the resolver does.
    """
    notes = advisory_notes(enforcement)
    gpu_notes = () if enforcement.gpu else (GPU_ADVISORY,)
    selected = previous.profile if previous else default_slug
    values = remembered_values(previous.user_options(), selected) if previous else {}
    remembered_tag = previous.image_tag if previous else None
    notice = None
    if previous_error is not None and previous_options:
        notice = (
            f"Your last choice is no longer available ({previous_error.message}); "
            "the default is selected."
        )
    cards = []
    for choice in choices:
        p = choice.profile
        cards.append(
            ProfileCard(
                slug=p.slug,
                display_name=p.display_name,
                description=p.description,
                cpu=p.cpu,
                memory_gib=p.memory / GIB,
                gpu=p.gpu,
                gpu_type=p.gpu_type,
                disk_gib=p.disk / GIB,
                price_per_hour=choice.price_per_hour,
                available=choice.available,
                reason=choice.reason,
                ranges=_ranges(choice, values if p.slug == selected else {}, gpu_cap),
                unit_prices=_unit_prices(config, choice),
                images=[_image_view(i, tags, remembered_tag) for i in choice.images],
                notes=notes + gpu_notes if _uses_gpus(choice) else notes,
            )
        )
    return PickerView(
        cards=cards,
        selected_profile=selected,
        selected_image=previous.image if previous else None,
        selected_values=values,
        projects=[(p.name, p.display_name) for p in projects],
        selected_project=previous.project if previous else "personal",
        currency=config.platform.currency,
        budget_text=budget_text,
        notice=notice,
        selected_tag=remembered_tag,
        tags_note=tags_note,
    )


def picker_for_user(
    config: PlatformConfig,
    access: UserAccess,
    host: HostCapabilities,
    previous_options: Mapping[str, Any],
    enforcement: Enforcement,
    budget_text: str = "No budget set",
    *,
    tags: Mapping[str, Sequence[str]] | None = None,
    tags_note: str | None = None,
) -> PickerView:
    """The picker for one user: their choices, with last time's choice resolved again
    under today's rules (or the default and a notice when that fails).

    ``tags`` and ``tags_note`` are ``ImageTags.current()``'s ``tags`` and ``problem``
    (None, None without a registry): the same ``tags`` the resolver gets at spawn."""
    choices = profile_choices(config, access, host)
    previous, previous_error = None, None
    if previous_options:
        try:
            previous = resolve_request(config, access, previous_options, host, tags=tags)
        except RequestError as e:
            previous_error = e
    return picker_view(
        config=config,
        choices=choices,
        projects=project_choices(config, access),
        default_slug=default_profile_slug(config, access, choices),
        previous=previous,
        previous_error=previous_error,
        previous_options=previous_options,
        enforcement=enforcement,
        budget_text=budget_text,
        tags=tags,
        tags_note=tags_note,
        gpu_cap=host.gpu_count,
    )


def budget_text(budgets: Sequence[Mapping[str, Any]], currency: str) -> str:
    """One line for the picker: the budget with the least money left, the one that limits
    what a spawn may cost (the platform service's standings, as ``/api/me`` returns them)."""
    if not budgets:
        return "No budget set"
    b = min(budgets, key=lambda b: (max(0.0, b["amount"] - b["spent"]), -b["fraction"]))
    left = max(0.0, b["amount"] - b["spent"])
    what = {"user": "Your", "group": "Team", "project": "Project"}[b["kind"]]
    name = "" if b["kind"] == "user" else f" {b['name']}"
    return (
        f"{what}{name} {b['period']} budget: {b['spent']:,.2f} of {b['amount']:,.2f} {currency} "
        f"spent, {left:,.2f} left (resets {b['resets_at'][:10]})."
    )
