"""Exceptions raised by tasker.

Every tasker error derives from [`TaskerError`][tasker.errors.TaskerError]. The errors a caller
meets when the manager refuses work are also `RuntimeError`s, as the standard library's
executors use.
"""

from __future__ import annotations

from concurrent.futures import CancelledError
from typing import Any

__all__ = [
    "CancelledError",
    "ManagerBrokenError",
    "ManagerClosedError",
    "QueueFullError",
    "RemoteTaskError",
    "ResourceCreationError",
    "RetriesExhaustedError",
    "TaskExpiredError",
    "TaskerError",
    "WorkerCrashedError",
]


class TaskerError(Exception):
    """Base class of every error tasker raises itself."""


class ManagerClosedError(TaskerError, RuntimeError):
    """The manager was stopped or killed: it accepts no new work."""


class ManagerBrokenError(TaskerError, RuntimeError):
    """No worker could be kept alive: `on_create` kept failing for longer than allowed.

    The last creation failure is chained as `__cause__`. The manager recovers by itself as soon
    as a worker manages to create its resource again.
    """


class QueueFullError(TaskerError, RuntimeError):
    """The queue was at its limit (`with_queue_limit`) and the caller would not wait for room.

    Raised by a submission that asked not to wait (`block=False`), or whose wait for room ran
    out (`block=seconds`). The task was never queued.
    """


class TaskExpiredError(TaskerError):
    """The task waited in the queue longer than allowed (`with_max_queue_wait`): it was shed.

    A worker that takes a task which has waited too long fails it with this error instead of
    running it late. The task never ran.

    Attributes:
        waited: the seconds the task had waited when a worker took it.
        max_wait: the limit it exceeded.
    """

    def __init__(self, message: str, *, waited: float, max_wait: float) -> None:
        super().__init__(message)
        self.waited = waited
        self.max_wait = max_wait


class ResourceCreationError(TaskerError):
    """`on_create` failed where the failure cannot be retried (building the manager, `run_task`).

    The exception raised by `on_create` is chained as `__cause__`.
    """


class RetriesExhaustedError(TaskerError):
    """A task failed on an unhealthy worker on every attempt it was allowed.

    The last attempt's exception is chained as `__cause__`.

    Attributes:
        attempts: how many times the task ran (1 + the retries allowed).
    """

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class WorkerCrashedError(TaskerError):
    """A worker's place died under its task: its process exited, its actor was lost.

    An executor raises it from `Place.call` when the resource's place is gone. The engine treats
    it as an unhealthy failure whatever the health check says: the worker is replaced and the
    task retried (never a once-task); a caller whose retries are exhausted gets
    `RetriesExhaustedError` chaining it, a once-task's caller gets it directly.
    """


class RemoteTaskError(TaskerError):
    """A task raised, in another process, an exception that could not be sent back as itself.

    Attributes:
        type_name: the qualified name of the exception's type.
        message: the exception's message (`str(exception)`).
        remote_traceback: the traceback text, as the remote process printed it.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message}\n\nin the worker process:\n{remote_traceback}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        return (type(self), (self.type_name, self.message, self.remote_traceback))
