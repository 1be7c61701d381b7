"""What a user reads when their server does not start.

Pure: takes the text the server printed during this start and returns what a
person can act on: the line that names the cause of an exit, or the last lines
of a server that never answered; ``spawn_error`` carries such a message to the
hub's pages and progress stream.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from jupyterhub.spawner import SpawnException

# Lines that name a cause, most specific first.
_CAUSE_PATTERNS = (
    re.compile(r"Running as root is not recommended.*", re.IGNORECASE),
    re.compile(r"^\s*[A-Za-z_.]*(?:Error|Exception)\b:.*$"),
    re.compile(r"\[C [^\]]*\]\s*(.*)$"),  # jupyter's CRITICAL log lines
    re.compile(r"\[E [^\]]*\]\s*(.*)$"),  # jupyter's ERROR log lines
)
_MAX_LEN = 400
_TAIL_LINES = 8
_TAIL_LINE_LEN = 200
_PRINTED_NOTHING = "it printed nothing; an admin can find its log under the hub's data folder"


def failure_cause(output: str) -> str:
    """Pick the line of ``output`` that best says why the server stopped."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if not lines:
        return _PRINTED_NOTHING
    for pattern in _CAUSE_PATTERNS:
        for line in reversed(lines):
            m = pattern.search(line)
            if m:
                return _shorten(m.group(1) if m.groups() and m.group(1) else m.group(0))
    return _shorten(lines[-1])


def _shorten(text: str) -> str:
    return _shorten_to(text.strip(), _MAX_LEN)


def _shorten_to(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def last_log_lines(output: str, count: int = _TAIL_LINES) -> list[str]:
    """The last ``count`` non-blank lines of ``output``, each cut to a readable length."""
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    return [_shorten_to(ln, _TAIL_LINE_LEN) for ln in lines[-count:]] if count > 0 else []


def _timeout_head(seconds: float) -> str:
    return f"Your server did not accept connections within {seconds:g} s, so it was stopped"


def timeout_cause(seconds: float, lines: Sequence[str]) -> str:
    """What a user reads when their server never answered within ``seconds``."""
    if not lines:
        return f"{_timeout_head(seconds)}; {_PRINTED_NOTHING}."
    return f"{_timeout_head(seconds)}. The last lines of its log:\n" + "\n".join(lines)


def timeout_cause_html(seconds: float, lines: Sequence[str]) -> str:
    """``timeout_cause`` for the hub's pages, the log lines escaped and kept as lines."""
    if not lines:
        return html.escape(timeout_cause(seconds, lines))
    tail = html.escape("\n".join(lines))
    return f"{html.escape(_timeout_head(seconds))}. The last lines of its log:<pre>{tail}</pre>"


def spawn_error(
    message: str,
    *,
    reason: str,
    log_message: str = "",
    status_code: int = 400,
    html_message: str | None = None,
) -> SpawnException:
    """A SpawnException whose ``message`` is exactly what the user reads.

    JupyterHub's progress stream and error pages show ``exc.jupyterhub_message`` when
    set, and ``str(exc)`` (status, class name and the log message) otherwise; where
    ``html_message`` is given (already escaped) they render it instead.
    """
    exc = SpawnException(message, reason=reason, log_message=log_message, status_code=status_code)
    exc.jupyterhub_message = message
    if html_message is not None:
        exc.jupyterhub_html_message = html_message
    return exc
