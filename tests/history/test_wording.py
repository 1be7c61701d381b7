"""Names for authors and human dates for versions, instead of e-mails, hashes and ISO times."""

from __future__ import annotations

import pytest
from mlfactory.server.history import wording


@pytest.mark.parametrize(
    ("author", "email", "shown"),
    [
        ("Ada Lovelace", "ada@example.org", "Ada Lovelace"),
        ("ada", "ada@users.noreply.mlfactory", "ada"),
        ("", "ada-l@users.noreply.mlfactory", "ada-l"),
        ("", "12345+octo-cat@users.noreply.github.com", "octo-cat"),
        ("bob@example.org", "bob@example.org", "bob"),  # a name that is an address
        ("ada@users.noreply.mlfactory", "", "ada"),
        ("  ", "", "Someone"),
    ],
)
def test_display_name_is_never_an_address(author, email, shown):
    name = wording.display_name(author, email)
    assert name == shown and "@" not in name


def test_noreply_addresses():
    assert wording.is_noreply("ada@users.noreply.mlfactory")
    assert wording.is_noreply("1+x@users.noreply.github.com")
    assert not wording.is_noreply("ada@example.org")
    assert not wording.is_noreply("ada@users.noreply.mlfactory.evil@x")


def test_human_date():
    assert wording.human_date("2026-12-06T14:05:09Z") == "6 Dec 2026, 14:05 UTC"
    assert wording.human_date("2026-01-02T23:59:00+02:00") == "2 Jan 2026, 21:59 UTC"
    assert wording.human_date("not a time") == "not a time"


def test_restore_messages_quote_the_version_and_say_when():
    iso = "2026-12-06T14:05:09Z"
    assert wording.restore_message("Cleaned the data\n\nmore", iso) == (
        "Restored “Cleaned the data” from 6 Dec 2026, 14:05 UTC"
    )
    assert wording.restore_message("", iso) == "Restored a version from 6 Dec 2026, 14:05 UTC"
    long = wording.restore_message("x" * 200, iso)
    assert "…”" in long and len(long) < 120
    assert wording.before_restore_message("one", iso) == (
        "Changes kept before restoring “one” from 6 Dec 2026, 14:05 UTC"
    )


def test_a_copy_says_where_it_came_from():
    came = {"share_id": "a" * 16, "owner": "alice", "version": 2, "path": "work/q4.ipynb"}
    assert wording.copy_message(came) == "Copy of “q4.ipynb” shared by alice (version 2)"
    assert wording.copy_message({"owner": "bob"}) == "Copy of a notebook shared by bob"
    # whatever the file holds, one line or nothing
    assert wording.copy_message({"owner": "a\nb", "path": "x\ny.ipynb", "version": True}) == (
        "Copy of “x y.ipynb” shared by a b"
    )
    for junk in (None, "alice", {"owner": 3}, {"owner": " "}, {}):
        assert wording.copy_message(junk) == ""
    assert wording.first_version_message("Automatic version", came) == wording.copy_message(came)
    assert wording.first_version_message("Tidied", came) == (
        "Copy of “q4.ipynb” shared by alice (version 2)\n\nTidied"
    )
    assert wording.first_version_message("Tidied", None) == "Tidied"
