"""Clear errors for the ``...`` an inserted cell leaves in each input it cannot fill.

A cell run before its placeholders are replaced passes ``Ellipsis`` on, and deep inside
numpy that reads ``TypeError: len() of unsized object``. ``@expects`` catches it first.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["PlaceholderError", "expects", "placeholder_message"]

F = TypeVar("F", bound=Callable[..., Any])


class PlaceholderError(TypeError):
    """An input is still the ``...`` placeholder of the inserted cell."""

    def _render_traceback_(self) -> list[str]:
        # in a notebook: the message first, then the user's cell line, as the model API does
        from mlfactory.model_api.errors import render_brief

        return render_brief(self)


def placeholder_message(name: str, what: str | None, *, has_default: bool = False) -> str:
    """The sentence that tells a person which input to fill and with what."""
    what = what or "a value (the component's page describes each input)"
    if has_default:
        return (
            f"{name} is still `...`: replace `...` with {what}, "
            f"or remove `{name}=...` from the call to use the default"
        )
    return f"{name} is required: replace `...` with {what}"


def expects(**what: str) -> Callable[[F], F]:
    """Make a component refuse ``...`` in any input, naming the input and what it expects.

    ``what`` maps input names to what a person should put there, e.g.
    ``@expects(X="your feature table (a DataFrame or 2-d array)")``; inputs not named get a
    generic description.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        unknown = sorted(set(what) - set(signature.parameters))
        if unknown:  # a typo here would silently fall back to the generic text
            raise ValueError(f"{func.__name__} has no inputs {', '.join(unknown)}")

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True  # noqa: F841 - brief tracebacks leave this frame out
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return func(*args, **kwargs)  # Python's own message for a wrong call
            for name, value in bound.arguments.items():
                if value is Ellipsis:
                    has_default = signature.parameters[name].default is not inspect.Parameter.empty
                    raise PlaceholderError(
                        placeholder_message(name, what.get(name), has_default=has_default)
                    )
            return func(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate
