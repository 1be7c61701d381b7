"""One slug function for every name derived from a user or server name.

Workspaces, log files (and later volumes, repos, model names) all go through
``safe_slug`` so that two different names can never map to the same slug
(kubespawner CVE-2020-15110 was such a collision).
"""

from __future__ import annotations

import hashlib
import re

_SAFE_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HASH_SEP = "---"
_DIGEST_LEN = 16  # 64 bits: a collision cannot be searched for (32 bits took minutes)
_MIN_HASHED = 1 + len(_HASH_SEP) + _DIGEST_LEN  # one stem character, separator, digest


def safe_slug(name: str, max_length: int = 63) -> str:
    """Return ``name`` if it is already a safe slug, else a sanitized prefix plus a hash.

    A name is kept as-is only when it fully matches ``[a-z0-9-]`` (no leading or
    trailing ``-``), fits ``max_length`` and does not contain ``---``: the
    separator of hashed slugs, so a kept name can never equal a hashed one.
    """
    if max_length < _MIN_HASHED:
        raise ValueError(f"max_length must be at least {_MIN_HASHED} to fit a hashed slug")
    if _SAFE_RE.fullmatch(name) and len(name) <= max_length and _HASH_SEP not in name:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_DIGEST_LEN]
    stem = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    stem = stem[: max_length - len(_HASH_SEP) - len(digest)].rstrip("-") or "x"
    return f"{stem}{_HASH_SEP}{digest}"
