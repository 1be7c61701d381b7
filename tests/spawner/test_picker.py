"""render_picker: escaped, well-formed, no-JS-submittable HTML; form_to_options: only the
chosen card's fields, memory as "<n>Gi", and never an exception on junk."""

from __future__ import annotations

import dataclasses
from collections import Counter
from html.parser import HTMLParser

import pytest
from markupsafe import escape
from mlfactory.spawner.picker import (
    ImageView,
    PickerView,
    ProfileCard,
    RangeView,
    form_to_options,
    render_picker,
)

IMG_PAYLOAD = "<img src=x onerror=alert(1)>"
SCRIPT_PAYLOAD = '"><script>alert(1)</script>'
PAYLOADS = [IMG_PAYLOAD, SCRIPT_PAYLOAD]

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


# --- a small DOM from the stdlib parser ----------------------------------------------


@dataclasses.dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    parent: Node | None = None
    children: list[Node | str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        """Descendants by tag, one class token, and attributes (``data_testid=`` for
        ``data-testid``, ``for_=`` for ``for``)."""
        return [
            n
            for n in self.walk()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in (n.attrs.get("class") or "").split())
            and all(n.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert len(found) == 1, f"expected one {tag} .{cls} {attrs}, found {len(found)}"
        return found[0]

    def ancestors(self):
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


class _TreeBuilder(HTMLParser):
    """Builds a Node tree and fails on any end tag that does not close the open element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), parent=self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, dict(attrs), parent=self.stack[-1]))

    def handle_endtag(self, tag):
        assert tag not in VOID, f"end tag for void element <{tag}>"
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(markup: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(markup)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements: " + ", ".join(
        n.tag for n in builder.stack[1:]
    )
    return builder.root


# --- view builders ---------------------------------------------------------------------

PY = ImageView("py311", "Python 3.11", "Python with the usual data-science stack")
R = ImageView("r-base", "R 4.4", "R with tidyverse")


def make_card(slug: str = "small", **overrides) -> ProfileCard:
    fields = dict(
        slug=slug,
        display_name=f"{slug.title()} machine",
        description="For everyday notebooks",
        cpu=2.0,
        memory_gib=8.0,
        gpu=0,
        gpu_type=None,
        disk_gib=20.0,
        price_per_hour=0.2,
        available=True,
        reason=None,
        ranges={},
        unit_prices=None,
        images=[PY],
    )
    fields.update(overrides)
    return ProfileCard(**fields)


ADJUSTABLE = make_card(
    "flex",
    cpu=2.0,
    memory_gib=8.0,
    price_per_hour=0.2,
    ranges={
        "cpu": RangeView(min=1, max=8, step=0.5, value=2, unit="cores"),
        "memory": RangeView(min=2, max=64, step=0.5, value=8, unit="GiB"),
    },
    unit_prices={"cpu": 0.05, "memory": 0.0125, "gpu": 1.5},
    images=[PY, R],
)
GPU = make_card(
    "gpu-a100",
    display_name="A100",
    cpu=8.0,
    memory_gib=64.0,
    gpu=1,
    gpu_type="A100",
    disk_gib=100.0,
    price_per_hour=3.1,
    available=False,
    reason="Your group has no GPU quota.",
    notes=("Memory limit is advisory on this host",),
)


def make_view(**overrides) -> PickerView:
    fields = dict(
        cards=[make_card("small"), ADJUSTABLE, GPU],
        selected_profile=None,
        selected_image=None,
        selected_values={},
        projects=[("default", "Default project"), ("churn", "Churn model")],
        selected_project="default",
        currency="USD",
        budget_text="No budget set",
        notice=None,
    )
    fields.update(overrides)
    return PickerView(**fields)


def render(**overrides) -> tuple[str, Node]:
    markup = render_picker(make_view(**overrides))
    return markup, parse(markup)


def card_node(doc: Node, slug: str) -> Node:
    return doc.find(data_testid=f"profile-card-{slug}")


def radio(doc: Node, slug: str) -> Node:
    return doc.find("input", name="profile", value=slug)


# --- escaping --------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_text_from_config_and_users_is_only_ever_escaped(payload):
    hostile = make_card(
        payload,
        display_name=payload,
        description=payload,
        gpu=1,
        gpu_type=payload,
        available=False,
        reason=payload,
        images=[ImageView(payload, payload, payload), ImageView("b" + payload, payload, payload)],
        notes=(payload,),
        ranges={"cpu": RangeView(1, 4, 1, 2, "cores")},
    )
    single = make_card(
        "single", display_name=payload, images=[ImageView(payload, payload, payload)]
    )
    markup, doc = render(
        cards=[make_card("small"), hostile, single],
        selected_image=payload,
        projects=[(payload, payload)],
        selected_project=payload,
        currency=payload,
        budget_text=payload,
        notice=payload,
    )

    assert payload not in markup
    assert str(escape(payload)) in markup
    # Nothing the payload tried to create exists: one script (ours), no images.
    assert len(doc.find_all("script")) == 1
    assert doc.find_all("img") == []
    # And the text reads back exactly as configured.
    card = card_node(doc, payload)
    assert card.find(cls="mlfactory-name").text() == payload
    assert card.find(cls="mlfactory-unavailable").text() == payload
    assert doc.find(id="mlfactory-notice").text() == payload
    assert doc.find(id="mlfactory-budget").text() == payload
    assert card.find("option", value=payload).attrs.get("title") == payload
    assert doc.find("select", name="project").find("option").text() == payload
    assert doc.find("input", name=f"cpu--{payload}") is not None
    assert doc.find("input", type="hidden", name="image--single").attrs["value"] == payload
    assert card_node(doc, "small").find("output").text() == f"0.20 {payload}/hour"


def test_script_writes_text_only_and_loads_nothing():
    markup, doc = render()
    (script,) = doc.find_all("script")
    assert "src" not in script.attrs
    code = script.text()
    assert "innerHTML" not in code and "outerHTML" not in code
    assert "insertAdjacentHTML" not in code and "document.write" not in code
    assert ".textContent =" in code
    assert code.strip().startswith("(function () {") and code.strip().endswith("})();")
    assert "<link" not in markup and "@import" not in markup


# --- structure -------------------------------------------------------------------------


def test_markup_is_well_formed_with_every_field_inside_the_picker():
    markup, doc = render(notice="Your last choice is gone.")
    (root,) = [n for n in doc.children if isinstance(n, Node)]
    assert root.attrs["data-testid"] == "mlfactory-picker"
    assert all(not c.strip() for c in doc.children if isinstance(c, str))

    named = [n for n in doc.walk() if n.tag in {"input", "select", "textarea"}]
    assert named, "no form fields rendered"
    for field in named:
        assert field.attrs.get("name"), f"<{field.tag}> without a name"
        assert root in field.ancestors()

    ids = [n.attrs["id"] for n in doc.walk() if "id" in n.attrs]
    assert [i for i, count in Counter(ids).items() if count > 1] == []
    for label in doc.find_all("label"):
        if "for" in label.attrs:
            assert label.attrs["for"] in ids
        assert not any(a.tag == "label" for a in label.ancestors())
    for described in doc.walk():
        for ref in (described.attrs.get("aria-describedby") or "").split():
            assert ref in ids

    fieldset = doc.find("fieldset")
    assert fieldset.find("legend").text() == "Resources"
    assert len(fieldset.find_all("input", type="radio", name="profile")) == 3


def test_each_card_is_a_label_wrapped_radio_with_its_summary_and_price():
    _, doc = render()
    for slug in ("small", "flex", "gpu-a100"):
        card = card_node(doc, slug)
        assert radio(doc, slug).parent.tag == "label"
        assert card in radio(doc, slug).ancestors()
        price = card.find("output", data_testid=f"price-{slug}")
        assert price.attrs["class"] == "mlfactory-price"
        assert price.attrs["data-profile"] == slug
    assert card_node(doc, "small").find(cls="mlfactory-summary").text() == (
        "2 cores · 8 GiB memory · 20 GiB disk"
    )
    assert card_node(doc, "gpu-a100").find(cls="mlfactory-summary").text() == (
        "8 cores · 64 GiB memory · 1× A100 GPU · 100 GiB disk"
    )
    assert doc.find(data_testid="price-small").text() == "0.20 USD/hour"
    assert doc.find(data_testid="price-gpu-a100").text() == "3.10 USD/hour"


def test_notes_are_listed():
    _, doc = render()
    notes = card_node(doc, "gpu-a100").find("ul")
    assert [li.text() for li in notes.find_all("li")] == ["Memory limit is advisory on this host"]


# --- availability and selection --------------------------------------------------------


def test_unavailable_card_is_disabled_and_says_why():
    _, doc = render()
    card = card_node(doc, "gpu-a100")
    assert "disabled" in radio(doc, "gpu-a100").attrs
    assert "checked" not in radio(doc, "gpu-a100").attrs
    reason = card.find(cls="mlfactory-unavailable")
    assert reason.text() == "Your group has no GPU quota."
    assert reason.attrs["id"] in radio(doc, "gpu-a100").attrs["aria-describedby"].split()
    assert "disabled" in card.find("input", type="hidden").attrs
    assert "disabled" not in radio(doc, "small").attrs


def test_unavailable_card_without_reason_still_says_it_is_unavailable():
    _, doc = render(cards=[make_card("small"), dataclasses.replace(GPU, reason=None)])
    assert card_node(doc, "gpu-a100").find(cls="mlfactory-unavailable")


def test_selected_card_is_checked():
    _, doc = render(selected_profile="flex")
    assert "checked" in radio(doc, "flex").attrs
    assert "checked" not in radio(doc, "small").attrs


@pytest.mark.parametrize("selected", [None, "gone", "gpu-a100"])
def test_first_available_card_is_checked_when_the_selection_cannot_be(selected):
    unavailable_first = [dataclasses.replace(GPU, slug="off"), make_card("small"), ADJUSTABLE]
    _, doc = render(cards=unavailable_first, selected_profile=selected)
    radios = doc.find_all("input", type="radio")
    checked = [n.attrs["value"] for n in radios if "checked" in n.attrs]
    assert checked == ["small"]


def test_nothing_is_checked_when_nothing_is_available():
    _, doc = render(cards=[GPU], selected_profile="gpu-a100")
    assert "checked" not in radio(doc, "gpu-a100").attrs


def test_notice_and_budget_render():
    notice = "Your last choice 'gpu-x' is no longer available; the default is selected."
    _, doc = render(notice=notice, budget_text="12.50 of 100.00 USD used this month")
    alert = doc.find(id="mlfactory-notice")
    assert alert.attrs["role"] == "status"
    assert alert.text() == notice
    assert doc.find(id="mlfactory-budget").text() == "12.50 of 100.00 USD used this month"


def test_no_notice_element_without_a_notice():
    _, doc = render(notice=None)
    assert doc.find_all(id="mlfactory-notice") == []
    assert doc.find_all(role="status") == []


def test_project_select_preselects_the_current_project():
    _, doc = render(selected_project="churn")
    select = doc.find("select", name="project")
    options = select.find_all("option")
    assert [(o.attrs["value"], o.text()) for o in options] == [
        ("default", "Default project"),
        ("churn", "Churn model"),
    ]
    assert ["selected" in o.attrs for o in options] == [False, True]
    assert doc.find("label", for_=select.attrs["id"]).text() == "Project"


# --- adjustable fields and prices ------------------------------------------------------


def test_adjustable_inputs_carry_min_max_step_value_and_labels():
    _, doc = render()
    card = card_node(doc, "flex")
    cpu = card.find("input", name="cpu--flex")
    memory = card.find("input", name="memory--flex")
    assert (cpu.attrs["type"], cpu.attrs["min"], cpu.attrs["max"]) == ("number", "1", "8")
    assert (cpu.attrs["step"], cpu.attrs["value"]) == ("0.5", "2")
    assert (memory.attrs["min"], memory.attrs["max"], memory.attrs["step"]) == ("2", "64", "0.5")
    assert memory.attrs["value"] == "8"
    labels = {lbl.attrs.get("for"): lbl.text() for lbl in doc.find_all("label")}
    assert labels[cpu.attrs["id"]] == "CPU (cores)"
    assert labels[memory.attrs["id"]] == "Memory (GiB)"
    assert card.find_all("input", name="gpu--flex") == []
    # Fixed cards have no number inputs at all.
    assert card_node(doc, "small").find_all("input", type="number") == []


def test_adjustable_inputs_of_unavailable_cards_are_disabled():
    locked = dataclasses.replace(ADJUSTABLE, available=False, reason="Over budget")
    _, doc = render(cards=[make_card("small"), locked])
    for field in card_node(doc, "flex").walk():
        if field.tag in {"input", "select"}:
            assert "disabled" in field.attrs, field.attrs


def test_remembered_values_fill_the_selected_card_and_its_price():
    _, doc = render(selected_profile="flex", selected_values={"cpu": 4.0, "memory": 16.5})
    card = card_node(doc, "flex")
    assert card.find("input", name="cpu--flex").attrs["value"] == "4"
    assert card.find("input", name="memory--flex").attrs["value"] == "16.5"
    # 4 * 0.05 + 16.5 * 0.0125 = 0.40625, rounded to 4 then shown with 2 decimals
    assert card.find("output").text() == "0.41 USD/hour"


def test_remembered_values_fill_the_summary_too():
    _, doc = render(selected_profile="flex", selected_values={"cpu": 1.0, "memory": 16.5})
    summary = card_node(doc, "flex").find(cls="mlfactory-summary")
    assert summary.text() == "1 core · 16.5 GiB memory · 20 GiB disk"
    assert summary.attrs["data-testid"] == "summary-flex"


def test_gpu_counts_read_in_the_plural():
    many = dataclasses.replace(GPU, slug="gpus", gpu=2, available=True)
    _, doc = render(cards=[many])
    assert "2× A100 GPUs" in card_node(doc, "gpus").find(cls="mlfactory-summary").text()


def test_the_card_states_the_ranges_its_inputs_accept():
    _, doc = render()
    ranges = card_node(doc, "flex").find(cls="mlfactory-ranges")
    assert ranges.text() == (
        "You can choose 1–8 cores in steps of 0.5 · 2–64 GiB memory in steps of 0.5 GiB"
    )
    assert ranges.attrs["id"] in radio(doc, "flex").attrs["aria-describedby"].split()
    # Fixed cards promise no range.
    assert card_node(doc, "small").find_all(cls="mlfactory-ranges") == []


@pytest.mark.parametrize(
    ("ranges", "text"),
    [
        ({"cpu": RangeView(1, 4, 1, 2, "cores")}, "You can choose 1–4 cores"),
        ({"cpu": RangeView(4, 4, 1, 4, "cores")}, "You can choose 4 cores"),
        ({"gpu": RangeView(1, 1, 1, 1, "GPUs")}, "You can choose 1 GPU"),
        ({"gpu": RangeView(1, 4, 1, 1, "GPUs")}, "You can choose 1–4 GPUs"),
        (
            {"memory": RangeView(4, 32, 4, 8, "GiB")},
            "You can choose 4–32 GiB memory in steps of 4 GiB",
        ),
    ],
)
def test_ranges_text(ranges, text):
    _, doc = render(cards=[make_card("flex", ranges=ranges, unit_prices={"cpu": 0.1})])
    assert card_node(doc, "flex").find(cls="mlfactory-ranges").text() == text


def test_cards_carry_what_the_script_rebuilds_the_summary_from():
    _, doc = render()
    assert card_node(doc, "flex").attrs["data-disk-gib"] == "20"
    assert "data-gpu-type" not in card_node(doc, "flex").attrs
    assert card_node(doc, "gpu-a100").attrs["data-gpu-type"] == "A100"
    code = doc.find("script").text()
    assert "summary.textContent = summaryText(card, cpu, memory, gpu)" in code


def test_remembered_values_are_not_applied_to_other_cards():
    _, doc = render(selected_profile="small", selected_values={"cpu": 4.0})
    assert card_node(doc, "flex").find("input", name="cpu--flex").attrs["value"] == "2"
    assert doc.find(data_testid="price-flex").text() == "0.20 USD/hour"


def test_fixed_and_unit_priced_cards_carry_the_data_the_script_prices_from():
    _, doc = render()
    fixed = card_node(doc, "small").attrs
    assert fixed["data-fixed-price"] == "0.2"
    assert not any(k.startswith("data-unit-") for k in fixed)

    unit = card_node(doc, "flex").attrs
    assert "data-fixed-price" not in unit
    assert (unit["data-unit-cpu"], unit["data-unit-memory"], unit["data-unit-gpu"]) == (
        "0.05",
        "0.0125",
        "1.5",
    )
    assert (unit["data-cpu"], unit["data-memory-gib"], unit["data-gpu"]) == ("2", "8", "0")


def test_numbers_have_no_float_noise():
    odd = make_card(
        "odd",
        cpu=0.1 + 0.2,
        memory_gib=1e-5,
        ranges={"memory": RangeView(1e-5, 1e16, 0.1, 1e-5, "GiB")},
        unit_prices={"cpu": 1e-7, "memory": 0.1},
    )
    _, doc = render(cards=[odd])
    memory = doc.find("input", name="memory--odd").attrs
    assert (memory["min"], memory["max"], memory["step"]) == ("0.00001", "10000000000000000", "0.1")
    assert card_node(doc, "odd").attrs["data-unit-cpu"] == "0.0000001"
    assert "e-" not in doc.find("input", name="memory--odd").attrs["value"]


# --- images ----------------------------------------------------------------------------


def test_image_select_preselects_the_remembered_image():
    _, doc = render(selected_profile="flex", selected_image="r-base")
    select = card_node(doc, "flex").find("select", name="image--flex")
    assert [(o.attrs["value"], "selected" in o.attrs) for o in select.find_all("option")] == [
        ("py311", False),
        ("r-base", True),
    ]


def test_image_select_defaults_to_the_first_image():
    _, doc = render(selected_image="not-offered")
    options = card_node(doc, "flex").find("select").find_all("option")
    assert ["selected" in o.attrs for o in options] == [True, False]


def test_a_single_image_is_a_hidden_input_not_a_select():
    _, doc = render()
    card = card_node(doc, "small")
    assert card.find_all("select") == []
    hidden = card.find("input", name="image--small")
    assert (hidden.attrs["type"], hidden.attrs["value"]) == ("hidden", "py311")
    assert "Python 3.11" in card.text()


def test_a_card_without_images_sends_no_image_field():
    _, doc = render(cards=[make_card("bare", images=[])])
    assert doc.find_all(name="image--bare") == []


# --- form_to_options -------------------------------------------------------------------

SUBMITTED = {
    "profile": ["flex"],
    "cpu--flex": ["4"],
    "memory--flex": ["16"],
    "image--flex": ["r-base"],
    "image--small": ["py311"],
    "cpu--gpu-a100": ["8"],
    "gpu--gpu-a100": ["1"],
    "project": ["churn"],
    "_xsrf": ["token"],
    "unknown": ["x"],
}


def test_form_to_options_takes_only_the_chosen_cards_fields():
    assert form_to_options(SUBMITTED) == {
        "profile": "flex",
        "cpu": "4",
        "memory": "16Gi",
        "image": "r-base",
        "project": "churn",
    }


def test_form_to_options_reads_a_fixed_card_and_strips_the_profile():
    form = {**SUBMITTED, "profile": ["  small \n", "flex"]}
    assert form_to_options(form) == {"profile": "small", "image": "py311", "project": "churn"}


def test_form_to_options_does_not_check_ranges():
    form = {"profile": ["flex"], "cpu--flex": ["999"], "gpu--flex": ["-3"]}
    assert form_to_options(form) == {"profile": "flex", "cpu": "999", "gpu": "-3"}


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("8", "8Gi"),
        ("2.5", "2.5Gi"),
        ("2.50", "2.5Gi"),
        ("8.0", "8Gi"),
        ("0.1", "0.1Gi"),
        (" 16 ", "16Gi"),
        ("1e3", "1000Gi"),
        ("8Gi", "8Gi"),
        ("abc", "abc"),
        ("NaN", "NaN"),
        ("inf", "inf"),
        ("1e999999999", "1e999999999"),
    ],
)
def test_memory_becomes_a_gibibyte_string(sent, expected):
    assert form_to_options({"profile": ["p"], "memory--p": [sent]})["memory"] == expected


def test_empty_values_are_dropped():
    form = {"profile": ["flex"], "cpu--flex": [""], "memory--flex": ["  "], "project": [""]}
    assert form_to_options(form) == {"profile": "flex"}


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({}, {}),
        ({"project": ["churn"]}, {"project": "churn"}),
        ({"profile": [], "project": ["churn"]}, {"project": "churn"}),
        ({"profile": [""], "cpu--": ["4"]}, {}),
        ({"profile": ["   "]}, {}),
        ({"profile": None, "project": None}, {}),
        ({"profile": "flex", "cpu--flex": "4"}, {"profile": "flex", "cpu": "4"}),
        ({"profile": [b"flex"], "cpu--flex": [b"2"]}, {"profile": "flex", "cpu": "2"}),
        ({"profile": [b"\xff"]}, {"profile": "\ufffd"}),
        ({"profile": [3], "project": [None]}, {}),
        ({"profile": 3, "project": object()}, {}),
        ({"profile": [["flex"]]}, {}),
        ({"profile": ["flex"], "cpu--flex": [{"a": 1}], "memory--flex": [[]]}, {"profile": "flex"}),
    ],
)
def test_junk_input_never_raises(form, expected):
    assert form_to_options(form) == expected


class _BrokenForm(dict):
    """A form whose own lookup fails: a bug somewhere, not something a user sent."""

    def get(self, key, default=None):
        raise RuntimeError("the form store is broken")


class _BrokenValues:
    """A value list whose iteration fails with something other than "not iterable"."""

    def __iter__(self):
        raise ValueError("cannot list the values")


def test_an_unexpected_error_is_not_hidden():
    with pytest.raises(RuntimeError, match="form store is broken"):
        form_to_options(_BrokenForm(profile=["flex"]))
    with pytest.raises(ValueError, match="cannot list the values"):
        form_to_options({"profile": _BrokenValues()})


def test_values_that_are_not_lists_are_expected_junk():
    # the one error expected from what a user posts: a value that is not a list
    assert form_to_options({"profile": 3, "project": object()}) == {}
    assert form_to_options({"profile": ["flex"], "cpu--flex": 4.0}) == {"profile": "flex"}


@pytest.mark.parametrize("form", [None, [], "profile=flex", 42])
def test_non_mapping_input_gives_nothing(form):
    assert form_to_options(form) == {}


def test_rendered_form_round_trips_through_the_parser():
    """What a browser without JavaScript submits for the checked card comes back intact."""
    _, doc = render(selected_profile="flex", selected_values={"cpu": 3.5}, selected_image="r-base")
    form: dict[str, list[str]] = {}
    for field in doc.walk():
        if field.tag == "input" and "disabled" not in field.attrs:
            if field.attrs["type"] == "radio" and "checked" not in field.attrs:
                continue
            form.setdefault(field.attrs["name"], []).append(field.attrs["value"])
        elif field.tag == "select" and "disabled" not in field.attrs:
            chosen = [o for o in field.find_all("option") if "selected" in o.attrs]
            form[field.attrs["name"]] = [(chosen or field.find_all("option"))[0].attrs["value"]]
    assert form_to_options(form) == {
        "profile": "flex",
        "cpu": "3.5",
        "memory": "8Gi",
        "image": "r-base",
        "project": "default",
    }
