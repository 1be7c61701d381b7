"""Local-account rules: username and password policy, scrypt password hashes, lockout verdicts.

Pure logic with no I/O and no clock of its own (callers pass ``now``); the account store and
the authenticator call into it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime

# JupyterHub-compatible names: they become URL path segments, server names and OS-level slugs.
USERNAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
_USERNAME_RE = re.compile(USERNAME_PATTERN)

MINIMUM_PASSWORD_LENGTH = 8
# Bounds the work one login form can ask of the hash function.
MAXIMUM_PASSWORD_LENGTH = 1024


def is_valid_username(username: str) -> bool:
    """Whether ``username`` is an acceptable local account name.

    ``fullmatch``, not ``match``: ``"alice\\n"`` or ``"alice/../bob"`` must not pass on a
    valid prefix.
    """
    return isinstance(username, str) and _USERNAME_RE.fullmatch(username) is not None


def username_problem(username: str) -> str | None:
    """A sentence explaining why ``username`` is not acceptable, or None if it is."""
    if is_valid_username(username):
        return None
    return (
        "Usernames are 1-64 characters: lowercase letters, digits, '-', '_' and '.', "
        "starting with a letter or digit."
    )


def check_password(
    password: str, username: str, minimum_length: int = MINIMUM_PASSWORD_LENGTH
) -> list[str]:
    """Problems with ``password`` as a new password for ``username``; empty when acceptable.

    Length counts characters after Unicode NFKC normalisation (what is hashed).
    """
    if not password:
        return ["Password must not be empty."]
    if password.isspace():
        return ["Password must not consist only of spaces."]
    problems = []
    length = len(_normalise(password))
    if length < minimum_length:
        problems.append(f"Password must be at least {minimum_length} characters long.")
    if length > MAXIMUM_PASSWORD_LENGTH:
        problems.append(f"Password must be at most {MAXIMUM_PASSWORD_LENGTH} characters long.")
    if username and password.strip().lower() == username.strip().lower():
        problems.append("Password must not be the same as the username.")
    return problems


# --- password hashes --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost: ``n`` (CPU/memory, power of two), ``r`` (block size), ``p`` (parallelism).

    Memory per hash is about ``128 * n * r`` bytes. The default is one of OWASP's
    equivalent-strength choices (N=2**14, r=8, p=5: 16 MiB, five sequential passes).
    """

    n: int = 2**14
    r: int = 8
    p: int = 5

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.n > 2**20:
            raise ValueError(f"scrypt n must be a power of two between 2 and 2**20, got {self.n}")
        if not 1 <= self.r <= 64 or not 1 <= self.p <= 64:
            raise ValueError(f"scrypt r and p must be 1-64, got r={self.r} p={self.p}")


DEFAULT_SCRYPT = ScryptParams()
_SALT_BYTES = 16
_KEY_BYTES = 32
_SCHEME = "scrypt"


def _normalise(password: str) -> str:
    # The same password typed on different keyboards/OSes can arrive in different Unicode forms.
    return unicodedata.normalize("NFKC", password)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, params: ScryptParams) -> bytes:
    return hashlib.scrypt(
        _normalise(password).encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=256 * params.n * params.r + 2**20,
        dklen=_KEY_BYTES,
    )


def hash_password(password: str, params: ScryptParams = DEFAULT_SCRYPT) -> str:
    """Hash ``password`` with a fresh random salt.

    Returns ``scrypt$<n>$<r>$<p>$<salt b64>$<key b64>``; the parameters travel with the hash
    so a later change of cost still verifies old hashes (see :func:`needs_rehash`).
    CPU-heavy: call it from a worker thread in async code.
    """
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, params)
    return f"{_SCHEME}${params.n}${params.r}${params.p}${_b64(salt)}${_b64(key)}"


def parse_hash(encoded: str) -> tuple[ScryptParams, bytes, bytes]:
    """Split an encoded hash into (params, salt, key); ValueError if it is malformed."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise ValueError("not an mlfactory scrypt hash")
    scheme, n, r, p, salt, key = parts
    if not all(x.isdigit() for x in (n, r, p)):
        raise ValueError("scrypt parameters must be integers")
    params = ScryptParams(int(n), int(r), int(p))
    return params, _unb64(salt), _unb64(key)


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; a malformed hash never matches.

    Compares in constant time. CPU-heavy: call it from a worker thread in async code.
    """
    try:
        params, salt, key = parse_hash(encoded)
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, params), key)


def needs_rehash(encoded: str, params: ScryptParams = DEFAULT_SCRYPT) -> bool:
    """Whether ``encoded`` was made with other parameters than ``params`` (or is malformed)."""
    try:
        return parse_hash(encoded)[0] != params
    except ValueError:
        return True


# --- lockout -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockoutVerdict:
    locked: bool
    retry_after_seconds: int = 0


def _elapsed(last_failure: datetime, now: datetime) -> float:
    # A clock that stepped backwards must not stretch a lockout beyond its length.
    return max(0.0, (now - last_failure).total_seconds())


def lockout_verdict(
    failed_count: int,
    last_failure: datetime | None,
    now: datetime,
    allowed_failed_logins: int,
    lockout_seconds: int,
) -> LockoutVerdict:
    """Whether an account with this failure record is locked at ``now``.

    Locked once ``failed_count`` reaches ``allowed_failed_logins``, until ``lockout_seconds``
    after the last failure. ``allowed_failed_logins == 0`` or ``lockout_seconds == 0`` disables
    lockout. ``retry_after_seconds`` is rounded up, so it is at least 1 while locked.
    """
    if allowed_failed_logins <= 0 or lockout_seconds <= 0 or last_failure is None:
        return LockoutVerdict(False)
    if failed_count < allowed_failed_logins:
        return LockoutVerdict(False)
    remaining = lockout_seconds - _elapsed(last_failure, now)
    if remaining <= 0:
        return LockoutVerdict(False)
    return LockoutVerdict(True, math.ceil(remaining))


def next_failed_count(
    failed_count: int, last_failure: datetime | None, now: datetime, lockout_seconds: int
) -> int:
    """The failure count after one more failure at ``now``.

    Failures older than one lockout period are forgiven: the count restarts at 1. So an expired
    lockout is not re-armed by a single typo, and sporadic typos over weeks never add up.
    """
    if last_failure is None or _elapsed(last_failure, now) >= lockout_seconds:
        return 1
    return failed_count + 1


def lockout_message(retry_after_seconds: int) -> str:
    """What a locked-out user reads on the login page."""
    minutes = max(1, math.ceil(retry_after_seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed attempts; try again in {minutes} {unit}."
