"""`StructlogLogger`: tasker's structured events as structlog events."""

from __future__ import annotations

import logging
import time
from typing import Any

import structlog
from tasker.events import Event
from tasker_structlog import task_context

__all__ = ["ATTEMPT_EVENTS", "StructlogLogger", "method_for"]

_METHODS = (
    (logging.CRITICAL, "critical"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warning"),
    (logging.INFO, "info"),
)

ATTEMPT_EVENTS = frozenset(
    {
        Event.TASK_FAILED,
        Event.TASK_RETRIED,
        Event.TASK_TIMED_OUT,
        Event.TASK_ABANDONED,
        Event.WORKER_UNHEALTHY,
    }
)
"""Events about one attempt: with `task_context`, they carry the attempt's `duration`."""


def method_for(level: int) -> str:
    """The structlog method for a stdlib level: the nearest standard level at or below it.

    `DEBUG` → `debug` ... `CRITICAL` → `critical`; `25` → `info`; anything below `INFO`,
    `DEBUG` included, → `debug`.
    """
    for threshold, method in _METHODS:
        if level >= threshold:
            return method
    return "debug"


class StructlogLogger:
    """A tasker `Logger` emitting every event through structlog.

    The event is tasker's stable event name (`task.retried`, see `tasker.Event`); the key-value
    pairs are tasker's fields — `manager` (the manager's name, on every event), `task_id`,
    `worker_id`, `attempt`, `error` (the exception itself), ... Levels map to the structlog
    method of the same name (`logging.WARNING` → `warning`). From `ERROR` up, an `error` is
    also passed as `exc_info`, for the application's traceback processors.

    Events go through the application's structlog configuration as it is when they are logged
    (processors, filtering, logger factory), so `structlog.testing.capture_logs()` sees them.
    Values bound with `structlog.contextvars` reach the events logged in the submitter's context
    (`run_task` calls, and the task's own code) through the application's `merge_contextvars`
    processor; with the `tasker_structlog.task_context` plugin, the events logged about a task
    from worker threads carry them too, plus `queue` and `duration`.

    Registered as `"structlog"`: `.with_logger("structlog", logger_name="app.jobs", service="x")`.

    Args:
        logger: a structlog logger to use as is; by default `structlog.get_logger(logger_name)`.
        logger_name: the name given to the logger factory (the stdlib logger's name when
            structlog is configured over the standard library).
        **bound: key-value pairs bound to every event.

    Never raises: an error in the application's processors drops the event.
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: Any = None, *, logger_name: str = "tasker", **bound: Any) -> None:
        if logger is None:
            logger = structlog.get_logger(logger_name, **bound)
        elif bound:
            logger = logger.bind(**bound)
        self._logger: Any = logger

    @property
    def logger(self) -> Any:
        """The structlog logger events go to."""
        return self._logger

    def log(self, level: int, event: str, /, **fields: object) -> None:
        """Emit one tasker event as a structlog event."""
        try:
            emit = getattr(self._logger, method_for(level))
            error = fields.get("error")
            if level >= logging.ERROR and isinstance(error, BaseException):
                fields.setdefault("exc_info", error)
            task_id = fields.get("task_id")
            task = task_context.lookup(fields.get("manager"), task_id) if task_id else None
            if task is None:
                emit(str(event), **fields)
                return
            fields.setdefault("queue", task.queue)
            if task.started is not None and event in ATTEMPT_EVENTS:
                fields.setdefault("duration", time.perf_counter() - task.started)
            if task.context is None:
                emit(str(event), **fields)
            else:  # inside (a copy of) the submitter's context: its contextvars are visible
                task.context.copy().run(emit, str(event), **fields)
        except Exception:
            pass
