"""safe_slug: kept when already safe, hashed otherwise, never colliding."""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest
from mlfactory.spawner.slugs import safe_slug

SLUG = re.compile(r"[a-z0-9-]{1,63}")
HASHED = re.compile(r"(?P<stem>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)---(?P<digest>[0-9a-f]{16})")

TRICKY = [
    "alice",
    "Alice",
    "ALICE",
    "a-b",
    "a.b",
    "a_b",
    "A-B",
    "a--b",
    "a---b",
    "a----b",
    "a b",
    "a/b",
    "a\\b",
    "a\nb",
    "a\n",
    "-a",
    "a-",
    "-",
    "--",
    "é",
    "e",
    "ü",
    "用户",
    "",
    " ",
    "x",
    "x1",
    "1x",
    "a" * 63,
    "a" * 64,
    "a" * 65,
    "a" * 200,
    "a" * 199 + "b",
    "../etc",
    "alice@example.com",
    "alice+test@example.com",
]


@pytest.mark.parametrize("name", ["alice", "a-b", "x1", "a", "0", "a--b", "9lives", "a" * 63])
def test_safe_names_are_kept(name):
    assert safe_slug(name) == name


@pytest.mark.parametrize(
    "name", ["Alice", "a.b", "a_b", "a---b", "-a", "a-", "é", "", "a" * 64, "a\n", "a b"]
)
def test_other_names_are_hashed(name):
    slug = safe_slug(name)
    assert slug != name
    assert HASHED.fullmatch(slug), slug


def test_hashed_slug_keeps_a_readable_stem():
    assert safe_slug("Alice.Smith").startswith("alice-smith---")
    assert safe_slug("é").startswith("x---")
    assert safe_slug("").startswith("x---")


@pytest.mark.parametrize("name", TRICKY)
def test_result_is_always_a_valid_slug(name):
    slug = safe_slug(name)
    assert SLUG.fullmatch(slug), repr(slug)
    assert not slug.startswith("-") and not slug.endswith("-")


def test_no_collisions_across_tricky_names():
    slugs = {name: safe_slug(name) for name in TRICKY}
    assert len(set(slugs.values())) == len(TRICKY), slugs


def test_no_collisions_over_generated_names():
    alphabet = ["a", "A", "-", ".", "_", "b", " "]
    names = ["".join(p) for n in range(1, 5) for p in itertools.product(alphabet, repeat=n)]
    slugs = [safe_slug(n) for n in names]
    assert len(set(slugs)) == len(names)


@pytest.mark.parametrize("name", ["a.b", "a_b", "A-B", "Alice", "", "a" * 64, "a---b"])
def test_hashed_slug_used_as_a_name_does_not_collide(name):
    hashed = safe_slug(name)
    # someone registering the hashed slug itself as their name must get something else
    assert safe_slug(hashed) != hashed
    assert safe_slug(hashed) != safe_slug(name) or hashed == name


def test_deterministic():
    for name in TRICKY:
        assert safe_slug(name) == safe_slug(name)
    # a known value guards against the hash silently changing between releases
    # (workspace folders are named by it: a changed value would orphan them)
    assert safe_slug("a.b") == "a-b---" + hashlib.sha256(b"a.b").hexdigest()[:16]


@pytest.mark.parametrize("max_length", [20, 28, 32, 40, 63])
@pytest.mark.parametrize("name", ["a" * 100, "Alice.Smith" * 10, "a.b", "é" * 50, "a-" * 40])
def test_max_length_respected(name, max_length):
    slug = safe_slug(name, max_length=max_length)
    assert len(slug) <= max_length
    assert SLUG.fullmatch(slug)
    assert not slug.endswith("-")


def test_max_length_decides_whether_a_name_is_kept():
    assert safe_slug("abcdefghijklmnopqrst", max_length=20) == "abcdefghijklmnopqrst"
    assert safe_slug("abcdefghijk", max_length=20) == "abcdefghijk"
    hashed = safe_slug("abcdefghijklmnopqrstu", max_length=20)
    assert HASHED.fullmatch(hashed)
    assert len(hashed) <= 20


@pytest.mark.parametrize("max_length", [1, 5, 12, 19])
def test_max_length_too_short_for_a_hash_is_not_silently_exceeded(max_length):
    # a hashed slug needs at least 20 characters (stem, '---', 16 hex digits): below that
    # the function must refuse rather than return something longer than asked for
    with pytest.raises(ValueError, match="at least 20"):
        safe_slug("abcdefghijklm", max_length=max_length)


def test_truncated_names_with_same_prefix_differ():
    a = safe_slug("x" * 80 + "1")
    b = safe_slug("x" * 80 + "2")
    assert a != b
    assert len(a) == len(b) == 63
