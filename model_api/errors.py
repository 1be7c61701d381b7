"""Typed errors shared by the library, the server and the SDK.

The server turns each into ``{"error", "error_type", "details"}`` with its status; the SDK turns
that body back into the same class, so callers catch one hierarchy on both sides of the wire.
In a notebook they render briefly (``_render_traceback_``): the message, then the user's line.
"""

from __future__ import annotations

import linecache
import os
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# the model's own frames under a ModelFailure: enough to find the line, not a library's stack
MAX_CAUSE_FRAMES = 6
MAX_USER_FRAMES = 3
_RED, _RESET = "\x1b[31m", "\x1b[0m"


class ModelAPIError(Exception):
    """Base class. ``status`` is the HTTP status the server answers with."""

    status = 500
    error_type = "internal_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "error_type": self.error_type, "details": self.details}

    def _render_traceback_(self) -> list[str]:
        return render_brief(self)


class BadRequest(ModelAPIError):
    """The body is not what the route takes (not JSON, wrong top-level shape)."""

    status = 400
    error_type = "bad_request"


class InvalidInput(ModelAPIError):
    """The body is well-formed but breaks the model's schema; ``details['field']`` names where."""

    status = 422
    error_type = "invalid_input"

    def __init__(self, message: str, field: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, {"field": field, **(details or {})})
        self.field = field


class Unauthorized(ModelAPIError):
    status = 401
    error_type = "unauthorized"


class Forbidden(ModelAPIError):
    status = 403
    error_type = "forbidden"


class NotFound(ModelAPIError):
    status = 404
    error_type = "not_found"


class NotReady(ModelAPIError):
    """503: the server or model is loading, or overloaded; retry after ``retry_after`` seconds."""

    status = 503
    error_type = "not_ready"

    def __init__(
        self, message: str, retry_after: float = 1.0, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after


class Overloaded(NotReady):
    error_type = "overloaded"


class ModelUnavailable(ModelAPIError):
    """503 for one model (or one version or alias) that failed to load at start-up.

    Not a ``NotReady``: retrying will not help until the package is fixed and the server
    restarted, so no ``Retry-After`` and the SDK does not retry. ``details['reason']`` says why.
    """

    status = 503
    error_type = "model_unavailable"


class UnsupportedMediaType(ModelAPIError):
    """415: the body's ``Content-Type`` is not one the route reads."""

    status = 415
    error_type = "unsupported_media_type"


class ModelFailure(ModelAPIError):
    """The model raised. The client sees the exception class name only, never a traceback."""

    status = 500
    error_type = "model_error"


class PredictionTimeout(ModelAPIError):
    status = 504
    error_type = "timeout"


class PackageError(ModelAPIError):
    """A model package cannot be written or read (path, format, integrity, unpickling)."""

    error_type = "package_error"


class PackageVersionError(PackageError):
    """The package was written by an mlfactory whose package format this one cannot read."""

    error_type = "package_version_error"


ERROR_TYPES: dict[str, type[ModelAPIError]] = {
    cls.error_type: cls
    for cls in (
        ModelAPIError,
        BadRequest,
        InvalidInput,
        Unauthorized,
        Forbidden,
        NotFound,
        NotReady,
        Overloaded,
        ModelUnavailable,
        UnsupportedMediaType,
        ModelFailure,
        PredictionTimeout,
        PackageError,
        PackageVersionError,
    )
}


# --- brief tracebacks in notebooks ----------------------------------------------------------------


def _user_frames(tb: TracebackType | None) -> list[tuple[str, int, str]]:
    """(file, line, function) of the frames outside this package and not hidden by
    ``__tracebackhide__`` (IPython's own ``run_code`` frame sets it, as pytest's helpers do)."""
    frames = []
    for frame, lineno in traceback.walk_tb(tb):
        code = frame.f_code
        if code.co_filename.startswith(_PACKAGE_DIR) or frame.f_locals.get("__tracebackhide__"):
            continue
        frames.append((code.co_filename, lineno, code.co_name))
    return frames


def _format_frames(
    frames: list[tuple[str, int, str]], limit: int, code_name: Callable[[str], str | None]
) -> list[str]:
    lines = []
    if len(frames) > limit:
        lines.append(f"  [... {len(frames) - limit} earlier frame(s)]")
    for filename, lineno, func in frames[-limit:]:
        cell = code_name(filename)
        where = f"{cell}, line {lineno}" if cell else f"File {filename}:{lineno}, in {func}"
        source = linecache.getline(filename, lineno).strip()
        lines.append(f"  {where}" + (f"\n    {source}" if source else ""))
    return lines


def brief_traceback(
    exc: BaseException, *, code_name: Callable[[str], str | None] = lambda _: None
) -> list[str]:
    """The message first, then the user's frames (this package's own are left out); a chained
    cause (a ModelFailure's model exception) follows with its own frames outside this package.

    ``code_name`` turns a compiled cell's file name into IPython's "Cell In[3]" (None: a file).
    """
    lines = [f"{_RED}{type(exc).__name__}{_RESET}: {exc}"]
    lines += _format_frames(_user_frames(exc.__traceback__), MAX_USER_FRAMES, code_name)
    cause = exc.__cause__
    if cause is not None:
        lines.append(f"caused by {type(cause).__name__}: {cause}")
        lines += _format_frames(_user_frames(cause.__traceback__), MAX_CAUSE_FRAMES, code_name)
    return lines


def render_brief(exc: BaseException) -> list[str]:
    """What an exception's ``_render_traceback_`` returns: IPython shows these lines instead
    of its own traceback (InteractiveShell.showtraceback); ``%xmode Verbose`` gets it all."""
    formatter = getattr(_ipython_shell(), "InteractiveTB", None)
    if getattr(formatter, "mode", None) == "Verbose":
        return formatter.structured_traceback(  # type: ignore[union-attr]
            type(exc), exc, exc.__traceback__, tb_offset=1
        )
    return brief_traceback(exc, code_name=_ipython_code_name)


def _ipython_shell() -> Any:
    # IPython is loaded when it calls _render_traceback_; never import it from here
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _ipython_code_name(filename: str) -> str | None:
    try:
        named = _ipython_shell().compile.format_code_name(filename)
    except AttributeError:
        return None
    return f"{named[0]} {named[1]}" if named else None


class PublishRefused(ModelAPIError):
    """A publish did not happen: the test prediction failed, or the registry refused the
    package (``details['status']`` is the registry's HTTP status, when it answered)."""

    status = 400
    error_type = "publish_refused"
