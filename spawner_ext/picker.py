"""The resource picker on the spawn page: a pure renderer from a view model to HTML,
and the parser that turns the submitted form back into ``user_options`` strings.

No I/O besides loading the template once; every value from config or users is
escaped by Jinja's autoescaping, and numbers are formatted here, not in the template.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

__all__ = [
    "ImageView",
    "PickerView",
    "ProfileCard",
    "RangeView",
    "form_to_options",
    "render_picker",
]

# Adjustable fields in display order: (key, label); the label gets the range's unit.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("cpu", "CPU"),
    ("memory", "Memory"),
    ("gpu", "GPUs"),
)
_FIELD_KEYS = tuple(key for key, _ in _FIELDS)

# A decimal string this far from 1 is not a size anyone asks for; formatting it
# with "f" could build a string of a billion digits ("1e999999999").
_MAX_DECIMAL_EXPONENT = 30

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATE_NAME = "picker.html"


@dataclass(frozen=True)
class RangeView:
    min: float
    max: float
    step: float
    value: float
    unit: str  # "cores" | "GiB" | "GPUs"


@dataclass(frozen=True)
class ImageView:
    slug: str
    display_name: str
    description: str
    # Registry tags offered, newest first, the catalog's own among them; () = no registry,
    # so no tag choice (the catalog's tag is used).
    tags: Sequence[str] = ()
    default_tag: str | None = None  # the catalog's own tag, submitted as the bare slug
    default_in_registry: bool = True  # False: the registry does not list the catalog's tag


@dataclass(frozen=True)
class ProfileCard:
    slug: str
    display_name: str
    description: str
    cpu: float
    memory_gib: float
    gpu: int
    gpu_type: str | None
    disk_gib: float
    price_per_hour: float  # at the card's own values
    available: bool
    reason: str | None  # shown when unavailable
    ranges: Mapping[str, RangeView]  # keys among "cpu", "memory", "gpu": adjustable fields
    # {"cpu": per core-hour, "memory": per GiB-hour, "gpu": per GPU-hour}; None = fixed price
    unit_prices: Mapping[str, float] | None
    images: Sequence[ImageView]
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class PickerView:
    cards: Sequence[ProfileCard]
    selected_profile: str | None
    selected_image: str | None
    selected_values: Mapping[str, float]  # remembered cpu/memory(GiB)/gpu for the selected card
    projects: Sequence[tuple[str, str]]  # (name, display name)
    selected_project: str
    currency: str  # e.g. "USD"
    budget_text: str  # e.g. "No budget set"
    notice: str | None
    selected_tag: str | None = None  # remembered tag of ``selected_image``; None = its default
    tags_note: str | None = None  # why the registry's tags may be out of date


def _num(value: float) -> str:
    """The shortest decimal that round-trips ``value``, never in exponent form: 8.0 -> "8"."""
    if isinstance(value, bool) or not math.isfinite(value):
        return str(value)
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _price_text(price: float, currency: str) -> str:
    # Same rounding as the script: to 4 decimals first, then 2 for display.
    return f"{round(price, 4):.2f} {currency}/hour"


def _own_values(card: ProfileCard) -> dict[str, float]:
    return {"cpu": card.cpu, "memory": card.memory_gib, "gpu": float(card.gpu)}


def _shown_values(card: ProfileCard, remembered: Mapping[str, float] | None) -> dict[str, float]:
    """The values the card's number inputs start with: remembered ones, else the range's."""
    values = _own_values(card)
    for key, rng in card.ranges.items():
        if key not in values:
            continue
        values[key] = rng.value
        if remembered is not None and key in remembered:
            values[key] = remembered[key]
    return values


def _initial_price(card: ProfileCard, values: Mapping[str, float]) -> float:
    """The price for the values shown, by the same formula the script uses after an edit."""
    if card.unit_prices is None or values == _own_values(card):
        return card.price_per_hour
    base = card.unit_prices.get("base", 0.0)
    return round(base + sum(values[k] * card.unit_prices.get(k, 0.0) for k in _FIELD_KEYS), 4)


def _summary(card: ProfileCard, values: Mapping[str, float]) -> str:
    """ "2 cores · 16 GiB memory · 50 GiB disk" for the values shown; the script's
    ``summaryText`` builds the same line after an edit, so keep the two in step."""
    cpu, memory, gpu = values["cpu"], values["memory"], values["gpu"]
    parts = [f"{_num(cpu)} {'core' if cpu == 1 else 'cores'}"]
    parts.append(f"{_num(memory)} GiB memory")
    if gpu:
        kind = f" {card.gpu_type}" if card.gpu_type else ""
        parts.append(f"{_num(gpu)}×{kind} {'GPU' if gpu == 1 else 'GPUs'}")
    parts.append(f"{_num(card.disk_gib)} GiB disk")
    return " · ".join(parts)


# How each adjustable field's range reads on the card: (one, many, noun after the numbers).
_RANGE_WORDS = {
    "cpu": ("core", "cores", ""),
    "memory": ("GiB", "GiB", " memory"),
    "gpu": ("GPU", "GPUs", ""),
}


def _ranges_text(card: ProfileCard) -> str | None:
    """ "You can choose 1–4 cores · 4–32 GiB memory in steps of 4 GiB": this user's ranges
    (group limits applied), so a card never promises more than its inputs accept."""
    parts = []
    for key in _FIELD_KEYS:
        rng = card.ranges.get(key)
        if rng is None:
            continue
        one, many, noun = _RANGE_WORDS[key]
        unit = one if rng.max == 1 else many
        if rng.min == rng.max:
            parts.append(f"{_num(rng.min)} {unit}{noun}")
            continue
        text = f"{_num(rng.min)}–{_num(rng.max)} {unit}{noun}"
        if rng.step != 1:
            text += f" in steps of {_num(rng.step)}{' GiB' if key == 'memory' else ''}"
        parts.append(text)
    return "You can choose " + " · ".join(parts) if parts else None


def _checked_slug(view: PickerView) -> str | None:
    available = [card.slug for card in view.cards if card.available]
    if view.selected_profile in available:
        return view.selected_profile
    return available[0] if available else None


def _card_context(
    index: int, card: ProfileCard, view: PickerView, checked: str | None
) -> dict[str, Any]:
    is_checked = card.slug == checked
    remembered = view.selected_values if is_checked and card.slug == view.selected_profile else None
    values = _shown_values(card, remembered)
    fields = [
        {
            "key": key,
            "name": f"{key}--{card.slug}",
            "id": f"mlfactory-card-{index}-{key}",
            "label": f"{label} ({card.ranges[key].unit})",
            "min": _num(card.ranges[key].min),
            "max": _num(card.ranges[key].max),
            "step": _num(card.ranges[key].step),
            "value": _num(values[key]),
        }
        for key, label in _FIELDS
        if key in card.ranges
    ]
    image_slugs = [image.slug for image in card.images]
    if view.selected_image in image_slugs:
        selected_image = view.selected_image
    else:
        selected_image = image_slugs[0] if image_slugs else None
    tag_fields = [
        _tag_field(f"mlfactory-card-{index}-tag-{j}", card, image, view)
        for j, image in enumerate(card.images)
        if image.tags
    ]
    data = {
        "data-cpu": _num(card.cpu),
        "data-memory-gib": _num(card.memory_gib),
        "data-gpu": _num(card.gpu),
        "data-disk-gib": _num(card.disk_gib),  # for the summary the script rebuilds
    }
    if card.gpu_type:
        data["data-gpu-type"] = card.gpu_type
    if card.unit_prices is None:
        data["data-fixed-price"] = _num(card.price_per_hour)
    else:
        for key in (*_FIELD_KEYS, "base"):
            if key in card.unit_prices:
                data[f"data-unit-{key}"] = _num(card.unit_prices[key])
    return {
        "card": card,
        "id": f"mlfactory-card-{index}",
        "checked": is_checked,
        "summary": _summary(card, values),
        "ranges_text": _ranges_text(card),
        "price": _price_text(_initial_price(card, values), view.currency),
        "data": data,
        "fields": fields,
        "selected_image": selected_image,
        "tag_fields": tag_fields,
    }


def _tag_field(field_id: str, card: ProfileCard, image: ImageView, view: PickerView) -> dict:
    """One image's tag <select>: the catalog's own tag submits "" (the bare slug)."""
    remembered = view.selected_tag if image.slug == view.selected_image else None
    selected = remembered if remembered in image.tags else image.default_tag
    options = []
    for tag in image.tags:
        label = tag
        if tag == image.default_tag:
            label += " (default)" if image.default_in_registry else " (default, not in registry)"
        value = "" if tag == image.default_tag else tag
        options.append({"value": value, "label": label, "selected": tag == selected})
    label = "Tag" if len(card.images) == 1 else f"{image.display_name} tag"
    return {
        "id": field_id,
        "name": f"tag--{card.slug}--{image.slug}",
        "image": image.slug,
        "label": label,
        "options": options,
    }


def render_picker(view: PickerView) -> str:
    """The options-form HTML for JupyterHub's spawn page (goes inside its ``<form>``)."""
    checked = _checked_slug(view)
    cards = [_card_context(i, card, view, checked) for i, card in enumerate(view.cards)]
    return _ENV.get_template(_TEMPLATE_NAME).render(view=view, cards=cards)


def _first(formdata: Mapping[str, Any], key: str) -> str:
    """The first submitted value of ``key``, stripped; "" when absent or not text.

    Values of the wrong type are expected junk (anyone can post anything) and give "".
    Anything else raised here is a bug: it propagates, and JupyterHub's spawn page logs
    it with its traceback and shows the form again.
    """
    values = formdata.get(key)
    if isinstance(values, str | bytes):
        values = [values]
    try:
        value = next(iter(values), "") if values is not None else ""
    except TypeError:  # not a list of values (a number, an object)
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value.strip() if isinstance(value, str) else ""


def _gibibytes(text: str) -> str:
    """ "8" -> "8Gi", "2.50" -> "2.5Gi"; anything that is not a plain number is left as sent,
    for the resolver to reject with its own message."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite() or abs(number.adjusted()) > _MAX_DECIMAL_EXPONENT:
        return text
    digits = format(number, "f")
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".")
    return f"{digits}Gi"


def form_to_options(formdata: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The chosen profile's fields from the submitted spawn form, as ``user_options`` strings.

    Returns keys among ``profile``, ``cpu``, ``memory`` (e.g. ``"8Gi"``), ``gpu``,
    ``image`` and ``project``; ``image`` is ``slug:tag`` when a tag other than the catalog's
    was chosen for it. Fields of other cards and unknown keys are ignored;
    values are not range-checked here (the server's resolver does that). Never raises on
    junk values; a ``formdata`` whose own methods fail is not hidden.
    """
    if not isinstance(formdata, Mapping):
        return {}
    options: dict[str, str] = {}
    profile = _first(formdata, "profile")
    if profile:
        options["profile"] = profile
        for key in (*_FIELD_KEYS, "image"):
            value = _first(formdata, f"{key}--{profile}")
            if value:
                options[key] = _gibibytes(value) if key == "memory" else value
        image = options.get("image")
        tag = _first(formdata, f"tag--{profile}--{image}") if image else ""
        if image and tag and ":" not in image:
            options["image"] = f"{image}:{tag}"
    project = _first(formdata, "project")
    if project:
        options["project"] = project
    return options
