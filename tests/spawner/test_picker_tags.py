"""Registry tags in the picker: a tag <select> per image (the catalog's tag preselected and
sent as the bare slug, the last choice remembered), the stale-tags note, escaping, and the
enforcement and GPU texts of the container backend."""

from __future__ import annotations

import pytest
from markupsafe import escape
from mlfactory.hub.platform_config import PACKAGED_CONFIG, load_platform_config
from mlfactory.spawner.form import MAX_TAGS_SHOWN, Enforcement, picker_for_user
from mlfactory.spawner.picker import ImageView, form_to_options, render_picker
from mlfactory.spawner.profiles import HostCapabilities, resolve_request, user_access

from .test_picker import PAYLOADS, Node, card_node, make_card, parse, render

PY = ImageView("py311", "Python 3.11", "", tags=("3", "2", "1"), default_tag="2")
R = ImageView("r-base", "R 4.4", "", tags=("4.4", "4.3"), default_tag="4.3")


def tag_select(doc: Node, card: str, image: str) -> Node:
    return doc.find("select", name=f"tag--{card}--{image}")


def chosen(select: Node) -> tuple[str, str]:
    (option,) = [o for o in select.find_all("option") if "selected" in o.attrs]
    return option.attrs["value"], option.text()


def submitted(doc: Node) -> dict[str, list[str]]:
    """What a browser without JavaScript sends for the rendered form."""
    form: dict[str, list[str]] = {}
    for field in doc.walk():
        if "disabled" in field.attrs:
            continue
        if field.tag == "input":
            if field.attrs["type"] == "radio" and "checked" not in field.attrs:
                continue
            form.setdefault(field.attrs["name"], []).append(field.attrs["value"])
        elif field.tag == "select":
            picked = [o for o in field.find_all("option") if "selected" in o.attrs]
            form[field.attrs["name"]] = [(picked or field.find_all("option"))[0].attrs["value"]]
    return form


# --- rendering -----------------------------------------------------------------------------


def test_each_image_gets_a_tag_select_with_the_catalog_tag_preselected():
    _, doc = render(cards=[make_card("flex", images=[PY, R])])
    py = tag_select(doc, "flex", "py311")
    assert [o.attrs["value"] for o in py.find_all("option")] == ["3", "", "1"]
    assert chosen(py) == ("", "2 (default)")
    assert chosen(tag_select(doc, "flex", "r-base")) == ("", "4.3 (default)")
    # Labelled, and wrapped so the script can show only the chosen image's tags.
    label = doc.find("label", for_=py.attrs["id"])
    assert label.text() == "Python 3.11 tag"
    assert py.parent.attrs["data-image"] == "py311"


def test_a_single_image_card_labels_its_select_tag():
    _, doc = render(cards=[make_card("small", images=[PY])])
    select = tag_select(doc, "small", "py311")
    assert doc.find("label", for_=select.attrs["id"]).text() == "Tag"


def test_the_remembered_tag_is_preselected_for_the_remembered_image_only():
    _, doc = render(
        cards=[make_card("flex", images=[PY, R])], selected_image="r-base", selected_tag="4.4"
    )
    assert chosen(tag_select(doc, "flex", "r-base")) == ("4.4", "4.4")
    assert chosen(tag_select(doc, "flex", "py311")) == ("", "2 (default)")


def test_a_remembered_tag_the_registry_no_longer_has_falls_back_to_the_default():
    _, doc = render(cards=[make_card("a", images=[PY])], selected_image="py311", selected_tag="0")
    assert chosen(tag_select(doc, "a", "py311")) == ("", "2 (default)")


def test_a_catalog_tag_missing_from_the_registry_says_so():
    image = ImageView("py311", "Py", "", tags=("2",), default_tag="2", default_in_registry=False)
    _, doc = render(cards=[make_card("a", images=[image])])
    assert chosen(tag_select(doc, "a", "py311")) == ("", "2 (default, not in registry)")


def test_without_registry_tags_there_is_no_tag_select():
    _, doc = render(cards=[make_card("a", images=[ImageView("py311", "Py", "")])])
    assert doc.find_all("select", name="tag--a--py311") == []


def test_tag_selects_of_unavailable_cards_are_disabled():
    _, doc = render(cards=[make_card("a", images=[PY], available=False, reason="No.")])
    assert "disabled" in tag_select(doc, "a", "py311").attrs


def test_the_stale_tags_note_is_shown_and_absent_without_one():
    note = "Could not refresh the image tags from http://r (down); showing the tags known at T"
    _, doc = render(tags_note=note)
    assert doc.find(data_testid="tags-note").text() == note
    _, doc = render()
    assert doc.find_all(data_testid="tags-note") == []


@pytest.mark.parametrize("payload", PAYLOADS)
def test_tags_and_the_note_are_only_ever_escaped(payload):
    hostile = ImageView("py", payload, payload, tags=(payload, "1"), default_tag="1")
    markup, doc = render(
        cards=[make_card("a", images=[hostile, PY])],
        selected_image="py",
        selected_tag=payload,
        tags_note=payload,
    )
    assert payload not in markup and str(escape(payload)) in markup
    assert len(doc.find_all("script")) == 1 and doc.find_all("img") == []
    select = tag_select(doc, "a", "py")
    assert chosen(select) == (payload, payload)
    assert doc.find("label", for_=select.attrs["id"]).text() == f"{payload} tag"
    assert doc.find(data_testid="tags-note").text() == payload


def test_the_script_shows_only_the_chosen_images_tags():
    _, doc = render(cards=[make_card("flex", images=[PY, R])])
    code = doc.find("script").text()
    assert "function showTags(card)" in code and "field.hidden =" in code


# --- the submitted form --------------------------------------------------------------------


def test_a_non_default_tag_comes_back_as_slug_colon_tag():
    form = {"profile": ["flex"], "image--flex": ["r-base"], "tag--flex--r-base": ["4.4"]}
    assert form_to_options(form)["image"] == "r-base:4.4"


def test_the_default_tag_comes_back_as_the_bare_slug():
    form = {"profile": ["flex"], "image--flex": ["r-base"], "tag--flex--r-base": [""]}
    assert form_to_options(form)["image"] == "r-base"


def test_tags_of_other_images_and_other_cards_are_ignored():
    form = {
        "profile": ["flex"],
        "image--flex": ["r-base"],
        "tag--flex--py311": ["3"],
        "tag--small--r-base": ["4.4"],
    }
    assert form_to_options(form)["image"] == "r-base"


def test_rendered_form_with_a_remembered_tag_round_trips():
    _, doc = render(
        cards=[make_card("flex", images=[PY, R])],
        selected_profile="flex",
        selected_image="r-base",
        selected_tag="4.4",
    )
    assert form_to_options(submitted(doc))["image"] == "r-base:4.4"


# --- the view model from config ------------------------------------------------------------

CONFIG = load_platform_config(PACKAGED_CONFIG)  # python-ds, minimal, pytorch at 0.1.0
ML = user_access(CONFIG, ["ml-engineering"], False)
NO_GPU = HostCapabilities()
TAGS = {"python-ds": ("0.2.0", "0.1.0"), "pytorch": ("0.3.0",)}
CONTAINERS = Enforcement(cpu=True, memory=True, disk=True, gpu=True)


def images_of(view, card="cpu-small") -> dict[str, ImageView]:
    return {i.slug: i for i in next(c for c in view.cards if c.slug == card).images}


def test_picker_for_user_offers_registry_tags_with_the_catalogs():
    view = picker_for_user(CONFIG, ML, NO_GPU, {}, CONTAINERS, tags=TAGS, tags_note="stale")
    images = images_of(view)
    assert images["python-ds"].tags == ("0.2.0", "0.1.0")
    assert images["python-ds"].default_tag == "0.1.0"
    assert images["python-ds"].default_in_registry
    # pytorch's registry lacks its catalog tag: still offered, flagged.
    assert images["pytorch"].tags == ("0.3.0", "0.1.0")
    assert not images["pytorch"].default_in_registry
    # minimal was never listed (another registry, or none known yet): its own tag only.
    assert images["minimal"].tags == ("0.1.0",) and images["minimal"].default_in_registry
    assert view.tags_note == "stale"


def test_picker_for_user_without_a_registry_offers_no_tags():
    view = picker_for_user(CONFIG, ML, NO_GPU, {}, CONTAINERS)
    assert all(i.tags == () for i in images_of(view).values())
    assert "tag--" not in render_picker(view)


def test_the_last_tag_is_remembered_and_the_form_sends_it_back():
    previous = {"profile": "cpu-small", "image": "python-ds:0.2.0"}
    view = picker_for_user(CONFIG, ML, NO_GPU, previous, CONTAINERS, tags=TAGS)
    assert (view.selected_image, view.selected_tag, view.notice) == ("python-ds", "0.2.0", None)
    options = form_to_options(submitted(parse(render_picker(view))))
    assert options["image"] == "python-ds:0.2.0"
    req = resolve_request(CONFIG, ML, options, NO_GPU, tags=TAGS)
    assert req.image_ref == "mlfactory/python-ds:0.2.0"


def test_a_remembered_tag_gone_from_the_registry_falls_back_with_a_notice():
    previous = {"profile": "cpu-small", "image": "python-ds:0.0.9"}
    view = picker_for_user(CONFIG, ML, NO_GPU, previous, CONTAINERS, tags=TAGS)
    assert view.selected_tag is None
    assert view.notice and "'0.0.9'" in view.notice and "no longer available" in view.notice


def test_many_tags_are_cut_to_the_newest_keeping_default_and_remembered():
    many = tuple(f"1.{n}" for n in range(100, 0, -1))
    previous = {"profile": "cpu-small", "image": "python-ds:1.1"}
    view = picker_for_user(
        CONFIG, ML, NO_GPU, previous, CONTAINERS, tags={"python-ds": many + ("0.1.0",)}
    )
    tags = images_of(view)["python-ds"].tags
    assert tags[:MAX_TAGS_SHOWN] == many[:MAX_TAGS_SHOWN]
    assert tags[MAX_TAGS_SHOWN:] == ("1.1", "0.1.0")


# --- what is enforced, and GPUs --------------------------------------------------------------


def test_container_enforcement_calls_nothing_advisory():
    view = picker_for_user(CONFIG, ML, HostCapabilities(gpu_count=2), {}, CONTAINERS)
    assert all(card.notes == () for card in view.cards)
    assert "advisory" not in render_picker(view)


def test_local_enforcement_still_calls_disk_advisory():
    view = picker_for_user(CONFIG, ML, NO_GPU, {}, Enforcement(cpu=True, memory=True))
    assert "Disk size is advisory on this host" in view.cards[0].notes


def test_gpu_profiles_on_a_host_without_gpus_say_so():
    view = picker_for_user(CONFIG, ML, NO_GPU, {}, CONTAINERS)
    doc = parse(render_picker(view))
    card = card_node(doc, "gpu-t4")
    assert card.find(cls="mlfactory-unavailable").text() == "Needs 1 GPU; this host has no GPUs."
    assert "disabled" in card.find("input", name="profile").attrs
