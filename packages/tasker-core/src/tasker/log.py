"""The `Logger` protocol and its built-in implementations.

tasker logs structured events: a stable name from [`Event`][tasker.events.Event] plus key-value
fields. Nothing is printed unless the application configures logging: the `tasker` stdlib logger
carries a `NullHandler`, as libraries should.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

__all__ = ["Logger", "NullLogger", "StdlibLogger", "as_logger"]

logging.getLogger("tasker").addHandler(logging.NullHandler())


@runtime_checkable
class Logger(Protocol):
    """**Protocol**: receives tasker's structured events.

    `level` is a stdlib level number (`logging.INFO`, ...), `event` a stable event name, and
    `fields` the event's data (`task_id`, `worker_id`, `attempt`, `error`, `manager`, ...).
    Implementations must be thread-safe and must not raise. Like a collector, a logger may
    define `bind(manager)`, called once with the manager it serves when that is built.
    """

    def log(self, level: int, event: str, /, **fields: object) -> None:
        """Record one event."""


class NullLogger:
    """A logger that drops every event."""

    __slots__ = ()

    def log(self, level: int, event: str, /, **fields: object) -> None:
        """Drop the event."""


class StdlibLogger:
    """Sends events to a `logging.Logger`.

    The message reads `event key=value ...`; the event name and the fields are also attached to
    the record as `record.event` and `record.tasker` for structured handlers. Exceptions passed as
    `error` are rendered with `repr` and attached as `exc_info` at `ERROR` and above.
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger if logger is not None else logging.getLogger("tasker")

    @property
    def logger(self) -> logging.Logger:
        """The wrapped stdlib logger."""
        return self._logger

    def log(self, level: int, event: str, /, **fields: object) -> None:
        """Format and emit the event if the stdlib logger is enabled for `level`."""
        if not self._logger.isEnabledFor(level):
            return
        text = " ".join(f"{key}={_render(value)}" for key, value in fields.items())
        error = fields.get("error")
        exc_info = error if isinstance(error, BaseException) and level >= logging.ERROR else None
        self._logger.log(
            level,
            "%s %s",
            event,
            text,
            exc_info=exc_info,
            extra={"event": event, "tasker": fields},
            stacklevel=2,
        )


def _render(value: object) -> str:
    if isinstance(value, BaseException):
        return repr(value)
    return str(value)


def as_logger(value: Logger | logging.Logger | None) -> Logger:
    """Return `value` as a tasker `Logger`: stdlib loggers are wrapped, `None` means the default."""
    if value is None:
        return StdlibLogger()
    if isinstance(value, logging.Logger):
        return StdlibLogger(value)
    if isinstance(value, Logger):
        return value
    raise TypeError(
        f"logger must be a logging.Logger or have a log(level, event, **fields) method, "
        f"got {type(value).__name__}"
    )
