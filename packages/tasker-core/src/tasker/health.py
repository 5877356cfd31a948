"""Health checks: decide whether a task's exception means its worker's resource is broken.

A health checker is any callable taking the exception and returning `True` when the worker is
still healthy. An unhealthy verdict retires the worker (its resource is destroyed), starts a
replacement with a fresh resource, and retries the task unless it was submitted "once".
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["AlwaysHealthy", "HealthChecker", "UnhealthyOn"]


@runtime_checkable
class HealthChecker(Protocol):
    """**Protocol**: decides whether a task's exception leaves its worker healthy.

    Any `Callable[[BaseException], bool]` fits, a lambda included. Return `True` for healthy:
    the exception then goes to the caller unchanged and the worker keeps running.
    """

    def __call__(self, error: BaseException, /) -> bool:
        """Return `True` if the worker that raised `error` is still healthy."""
        ...


class AlwaysHealthy:
    """Every exception is the task's own problem; workers are never replaced. The default."""

    __slots__ = ()

    def __call__(self, error: BaseException, /) -> bool:
        """Return `True`."""
        return True

    def __repr__(self) -> str:
        return "AlwaysHealthy()"


class UnhealthyOn:
    """Exceptions of the given types (subclasses included) mark the worker unhealthy.

    Example: `UnhealthyOn(ConnectionError, TimeoutError)`.
    """

    __slots__ = ("_types",)

    def __init__(self, *types: type[BaseException]) -> None:
        if not types:
            raise ValueError("UnhealthyOn needs at least one exception type")
        for kind in types:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise TypeError(f"UnhealthyOn takes exception types, got {kind!r}")
        self._types = types

    @property
    def types(self) -> tuple[type[BaseException], ...]:
        """The exception types that mark a worker unhealthy."""
        return self._types

    def __call__(self, error: BaseException, /) -> bool:
        """Return `False` if `error` is an instance of one of the configured types."""
        return not isinstance(error, self._types)

    def __repr__(self) -> str:
        return f"UnhealthyOn({', '.join(t.__name__ for t in self._types)})"
