"""Pure local-account rules: username and password policy, scrypt hashes, lockout verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mlfactory.hub import accounts
from mlfactory.hub.accounts import ScryptParams

FAST = ScryptParams(n=2**4, r=1, p=1)
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


# --- usernames ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alice", "a", "bob-2", "c.d_e", "9lives", "x" * 64])
def test_valid_usernames(name):
    assert accounts.is_valid_username(name)
    assert accounts.username_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "alice\n",  # re.match with `$` would accept this
        "alice/../bob",
        "Alice",
        "-alice",
        ".alice",
        "_alice",
        "al ice",
        "x" * 65,
        "alïce",
        "alice@example.com",
    ],
)
def test_invalid_usernames(name):
    assert not accounts.is_valid_username(name)
    assert "lowercase letters" in accounts.username_problem(name)


# --- password policy ---------------------------------------------------------------------------


def test_good_password_has_no_problems():
    assert accounts.check_password("correct horse", "alice") == []


def test_empty_password():
    assert accounts.check_password("", "alice") == ["Password must not be empty."]


def test_whitespace_password():
    assert accounts.check_password("          ", "alice") == [
        "Password must not consist only of spaces."
    ]


def test_short_password_names_the_minimum():
    assert accounts.check_password("abc", "alice") == [
        "Password must be at least 8 characters long."
    ]
    assert accounts.check_password("abcdefghij", "alice", minimum_length=12) == [
        "Password must be at least 12 characters long."
    ]
    assert accounts.check_password("abcdefgh", "alice", minimum_length=8) == []


def test_password_equal_to_username():
    assert accounts.check_password("alexandra", "alexandra") == [
        "Password must not be the same as the username."
    ]
    assert "Password must not be the same as the username." in accounts.check_password(
        "Alexandra ", "alexandra"
    )


def test_short_and_equal_to_username_reports_both():
    assert len(accounts.check_password("bob", "bob")) == 2


def test_overlong_password():
    problems = accounts.check_password("x" * (accounts.MAXIMUM_PASSWORD_LENGTH + 1), "alice")
    assert problems == ["Password must be at most 1024 characters long."]


# --- hashing -----------------------------------------------------------------------------------


def test_hash_roundtrip_and_format():
    encoded = accounts.hash_password("s3cret-pass", FAST)
    scheme, n, r, p, salt, key = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16", "1", "1")
    assert "s3cret-pass" not in encoded
    assert accounts.verify_password("s3cret-pass", encoded)


def test_wrong_password_does_not_verify():
    encoded = accounts.hash_password("s3cret-pass", FAST)
    assert not accounts.verify_password("s3cret-pasS", encoded)
    assert not accounts.verify_password("", encoded)


def test_salt_is_random_per_hash():
    assert accounts.hash_password("same", FAST) != accounts.hash_password("same", FAST)


def test_default_parameters_roundtrip():
    encoded = accounts.hash_password("default-cost")
    assert encoded.startswith("scrypt$16384$8$5$")
    assert accounts.verify_password("default-cost", encoded)


def test_unicode_forms_are_normalised():
    composed, decomposed = "caf\u00e9-password", "cafe\u0301-password"
    encoded = accounts.hash_password(composed, FAST)
    assert accounts.verify_password(decomposed, encoded)


@pytest.mark.parametrize(
    "encoded",
    ["", "plain", "bcrypt$1$2$3$aa$bb", "scrypt$16$1$1$@@@$bb", "scrypt$15$1$1$aaaa$bbbb"],
)
def test_malformed_hash_never_verifies(encoded):
    assert not accounts.verify_password("anything", encoded)
    assert accounts.needs_rehash(encoded, FAST)


def test_needs_rehash_follows_parameters():
    encoded = accounts.hash_password("pw-pw-pw-pw", FAST)
    assert not accounts.needs_rehash(encoded, FAST)
    assert accounts.needs_rehash(encoded, ScryptParams(n=2**5, r=1, p=1))


def test_bad_scrypt_parameters_are_rejected():
    with pytest.raises(ValueError, match="power of two"):
        ScryptParams(n=1000)
    with pytest.raises(ValueError, match="r and p"):
        ScryptParams(n=16, r=0)


# --- lockout -----------------------------------------------------------------------------------


def verdict(count, last, now, allowed=5, seconds=600):
    return accounts.lockout_verdict(count, last, now, allowed, seconds)


def test_below_threshold_is_not_locked():
    assert verdict(4, T0, T0) == accounts.LockoutVerdict(False, 0)


def test_at_threshold_is_locked_for_the_full_period():
    assert verdict(5, T0, T0) == accounts.LockoutVerdict(True, 600)


def test_retry_after_counts_down_and_rounds_up():
    assert verdict(5, T0, T0 + timedelta(seconds=599.2)) == accounts.LockoutVerdict(True, 1)
    assert verdict(5, T0, T0 + timedelta(seconds=100)).retry_after_seconds == 500


def test_lockout_ends_exactly_at_the_period():
    assert not verdict(5, T0, T0 + timedelta(seconds=600)).locked
    assert not verdict(9, T0, T0 + timedelta(hours=1)).locked


def test_clock_going_backwards_never_extends_lockout():
    assert verdict(5, T0, T0 - timedelta(hours=1)) == accounts.LockoutVerdict(True, 600)


def test_never_failed_is_not_locked():
    assert not verdict(0, None, T0).locked


@pytest.mark.parametrize("allowed,seconds", [(0, 600), (5, 0)])
def test_zero_disables_lockout(allowed, seconds):
    assert not verdict(100, T0, T0, allowed, seconds).locked


def test_next_failed_count_within_window_increments():
    assert accounts.next_failed_count(3, T0, T0 + timedelta(seconds=10), 600) == 4


def test_next_failed_count_restarts_after_a_quiet_period():
    assert accounts.next_failed_count(5, T0, T0 + timedelta(seconds=600), 600) == 1
    assert accounts.next_failed_count(0, None, T0, 600) == 1


@pytest.mark.parametrize(
    "seconds,text",
    [
        (1, "try again in 1 minute."),
        (60, "try again in 1 minute."),
        (61, "try again in 2 minutes."),
        (600, "try again in 10 minutes."),
    ],
)
def test_lockout_message(seconds, text):
    message = accounts.lockout_message(seconds)
    assert message.startswith("Too many failed attempts; ")
    assert message.endswith(text)
