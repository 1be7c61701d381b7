"""The resolver's ``image`` option: catalog slugs, ``slug:tag`` with a registry tag, full
references an admin pattern allows, and everything else refused by name (DockerSpawner's
CVE-2023-48311 accepted any image when its allow-list was unset)."""

from __future__ import annotations

import pytest
from mlfactory.spawner.profiles import (
    REFERENCE_RE,
    RequestError,
    ResourceRequest,
    image_pattern_matches,
    resolve_request,
    sort_tags,
    split_reference,
)

from .profile_cases import NO_GPU, small, who

# Catalog: base = org/base:1 (default), torch = org/torch:1, r = org/r:1; group "analysts"
# may use base and r, "interns" only base.
SMALL = small()
ANALYST = who(SMALL, "analysts")
TAGS = {"base": ("2", "1", "1-rc"), "r": ("4.4",)}


def _with_patterns(*patterns: str):
    return small(lambda d: d.update(containers={"allowed_images": list(patterns)}))


def resolve(options, config=SMALL, access=ANALYST, tags=None) -> ResourceRequest:
    return resolve_request(config, access, {"profile": "small", **options}, NO_GPU, tags=tags)


def image_error(options, config=SMALL, access=ANALYST, tags=None) -> str:
    with pytest.raises(RequestError) as info:
        resolve(options, config, access, tags)
    assert info.value.field == "image"
    return info.value.message


# --- slugs and tags ------------------------------------------------------------------------


def test_slug_gives_the_catalogs_reference_with_or_without_tags():
    for tags in (None, TAGS):
        req = resolve({"image": "base"}, tags=tags)
        assert (req.image, req.image_ref, req.image_tag) == ("base", "org/base:1", None)
        assert req.user_options()["image"] == "base"


def test_slug_and_known_tag_give_that_tag_of_the_repository():
    req = resolve({"image": "base:2"}, tags=TAGS)
    assert (req.image, req.image_ref, req.image_tag) == ("base", "org/base:2", "2")
    # What is saved for the next spawn picks the same tag again.
    assert req.user_options()["image"] == "base:2"
    assert resolve(req.user_options(), tags=TAGS) == req


def test_the_catalogs_own_tag_named_explicitly_is_the_bare_slug():
    req = resolve({"image": "base:1"}, tags={"base": ()})
    assert (req.image, req.image_ref, req.image_tag) == ("base", "org/base:1", None)


def test_unknown_tag_is_refused_naming_it_and_the_known_ones():
    message = image_error({"image": "base:9"}, tags=TAGS)
    assert message == "tag '9' of 'base' is not in the registry; known tags: 1, 2, 1-rc"


def test_tag_of_an_image_the_registry_never_listed_is_refused():
    message = image_error({"image": "base:2"}, tags={})
    assert message == "tag '2' of 'base' is not in the registry; known tags: 1"


def test_a_tag_outside_the_grammar_is_refused_even_if_listed():
    message = image_error({"image": "base:a/b"}, tags={"base": ("a/b",)})
    assert "'a/b'" in message and "not in the registry" in message


def test_without_a_registry_no_tag_syntax_is_accepted():
    # tags None (local backend, no registry): exactly the catalog, as before tags existed.
    message = image_error({"image": "base:2"})
    assert message == "'base:2' is not in the image catalog; choose one of: base, r"


def test_tag_of_an_image_not_allowed_to_the_user_is_refused():
    interns = who(SMALL, "interns")
    message = image_error({"image": "r:4.4"}, access=interns, tags=TAGS)
    assert message == "'r:4.4' is not in the image catalog; choose one of: base"


def test_catalog_reference_with_registry_port_keeps_the_port():
    config = small(lambda d: d["images"][0].update(image="localhost:5000/org/base:1"))
    req = resolve({"image": "base:2"}, config=config, tags=TAGS)
    assert req.image_ref == "localhost:5000/org/base:2"


# --- forbidden images and admin patterns ---------------------------------------------------


@pytest.mark.parametrize(
    "image",
    ["evil.org/miner:latest", "ubuntu", "org/base:1", "torch", "docker.io/library/base"],
)
def test_no_patterns_nothing_outside_the_catalog(image):
    """CVE-2023-48311: an unset allow-list must not mean 'anything goes'."""
    message = image_error({"image": image}, tags=TAGS)
    assert message == f"{image!r} is not in the image catalog; choose one of: base, r"


def test_forbidden_image_names_it_whole_and_lists_patterns():
    config = _with_patterns("registry.example.org/ds/*")
    message = image_error({"image": "evil.org/x:1"}, config=config)
    assert message == (
        "'evil.org/x:1' is not in the image catalog; choose one of: base, r "
        "(or an image matching registry.example.org/ds/*)"
    )


def test_reference_matching_a_pattern_resolves_to_itself():
    config = _with_patterns("registry.example.org/ds/*")
    ref = "registry.example.org/ds/spark:3.5"
    req = resolve({"image": ref}, config=config)
    assert (req.image, req.image_ref, req.image_tag) == (ref, ref, None)
    assert req.user_options()["image"] == ref


@pytest.mark.parametrize(
    "image",
    [
        "evil.org/registry.example.org/ds/x",  # the pattern inside another reference
        "registry.example.org/ds/x/../../y",
        "registry.example.org/ds/sub/x:1",  # '*' does not cross '/'
        "registry.example.org.evil.org/ds/x",
        "registry.example.org/dsx",
        "registry.example.org/ds/",
        "registry.example.org/ds/X",  # not a valid reference (uppercase)
        "registry.example.org/ds/x\n",
        " registry.example.org/ds/x",
    ],
)
def test_patterns_are_anchored_to_the_whole_reference(image):
    config = _with_patterns("registry.example.org/ds/*")
    message = image_error({"image": image}, config=config)
    assert message.startswith(f"{image!r} is not in the image catalog")


@pytest.mark.parametrize(
    ("pattern", "reference", "matches"),
    [
        ("registry.example.org/ds/*", "registry.example.org/ds/x:1", True),
        ("registry.example.org/ds/*", "registry.example.org/ds/x@sha256:" + "a" * 64, True),
        ("registry.example.org/ds/*", "evil.org/registry.example.org/ds/x", False),
        ("registry.example.org/ds/*", "registry.example.org/ds/a/b", False),
        ("*/ds/*", "evil.org/ds/x", True),  # the admin's own breadth
        ("*/ds/*", "evil.org/a/ds/x", False),
        ("org/img:202?.1", "org/img:2026.1", True),
        ("org/img:202?.1", "org/img:2026.10", False),
        ("org/img:2026.1", "org/img:2026x1", False),  # '.' is literal
        ("org/img:[a]", "org/img:a", False),  # only '*' and '?' are wildcards
        ("Org/img", "org/img", False),  # case-sensitive
    ],
)
def test_pattern_rules(pattern, reference, matches):
    assert image_pattern_matches(pattern, reference) is matches


def test_an_exact_pattern_allows_exactly_that_reference():
    config = _with_patterns("quay.io/team/nb:1.0")
    assert (
        resolve({"image": "quay.io/team/nb:1.0"}, config=config).image_ref == "quay.io/team/nb:1.0"
    )
    assert "not in the image catalog" in image_error(
        {"image": "quay.io/team/nb:1.1"}, config=config
    )


@pytest.mark.parametrize("value", [None, 1, ["base"], {"a": 1}, b"base", ""])
def test_non_text_image_options_are_refused(value):
    assert "is not in the image catalog" in image_error({"image": value}, tags=TAGS)


# --- reference helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("org/img:1", ("org/img", "1")),
        ("org/img", ("org/img", None)),
        ("localhost:5000/org/img", ("localhost:5000/org/img", None)),
        ("localhost:5000/org/img:2", ("localhost:5000/org/img", "2")),
        ("org/img:1@sha256:" + "b" * 64, ("org/img", "1")),
    ],
)
def test_split_reference(reference, expected):
    assert split_reference(reference) == expected


def test_reference_grammar_rejects_junk():
    assert REFERENCE_RE.fullmatch("registry.example.org:5000/a/b-c:1.0_x")
    for junk in ("a b", "a//b", "-a", "a:", "a:-1", "a@sha256:xyz", "a/B", "a:" + "x" * 129):
        assert not REFERENCE_RE.fullmatch(junk), junk


def test_tags_sort_newest_first_in_version_order():
    tags = [
        "2026.9",
        "latest",
        "2026.12",
        "2026.1",
        "2027.1",
        "v1.10",
        "v1.2",
        "bad tag",
        "2026.12",
    ]
    assert sort_tags(tags) == (
        "2027.1",
        "2026.12",
        "2026.9",
        "2026.1",
        "v1.10",
        "v1.2",
        "latest",
    )


def test_a_release_tag_leads_its_builds_however_many():
    # the image build pushes 0.1.0 and 0.1.0-<content digest> per build: dozens of builds
    # must not push the release out of the picker's first MAX_TAGS_SHOWN
    builds = [f"0.1.0-{i:012x}" for i in range(60)]
    tags = [*builds, "0.1.0", "0.2.0-rc1", "0.2.0", "latest"]
    ordered = sort_tags(tags)
    assert ordered[:3] == ("0.2.0", "0.2.0-rc1", "0.1.0")
    assert set(ordered[3:-1]) == set(builds) and ordered[-1] == "latest"
