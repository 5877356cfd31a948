"""Small helpers shared by the collector and the tracer."""

from __future__ import annotations

__all__ = ["error_type"]


def error_type(error: BaseException) -> str:
    """The `error.type` of an exception: its class, qualified unless it is a builtin."""
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"
