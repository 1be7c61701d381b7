"""Reading why a single-user server failed to start, from its own output.

Pure: takes the text the server printed during this start and returns one
line a person can act on.
"""

from __future__ import annotations

import re

# Lines that name a cause, most specific first.
_CAUSE_PATTERNS = (
    re.compile(r"Running as root is not recommended.*", re.IGNORECASE),
    re.compile(r"^\s*[A-Za-z_.]*(?:Error|Exception)\b:.*$"),
    re.compile(r"\[C [^\]]*\]\s*(.*)$"),  # jupyter's CRITICAL log lines
    re.compile(r"\[E [^\]]*\]\s*(.*)$"),  # jupyter's ERROR log lines
)
_MAX_LEN = 400


def failure_cause(output: str) -> str:
    """Pick the line of ``output`` that best says why the server stopped."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if not lines:
        return "it printed nothing; an admin can find its log under the hub's data folder"
    for pattern in _CAUSE_PATTERNS:
        for line in reversed(lines):
            m = pattern.search(line)
            if m:
                return _shorten(m.group(1) if m.groups() and m.group(1) else m.group(0))
    return _shorten(lines[-1])


def _shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_LEN else text[: _MAX_LEN - 1] + "…"
