"""Typed errors shared by the library, the server and the SDK.

The server turns each into ``{"error", "error_type", "details"}`` with its status; the SDK turns
that body back into the same class, so callers catch one hierarchy on both sides of the wire.
"""

from __future__ import annotations

from typing import Any


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
