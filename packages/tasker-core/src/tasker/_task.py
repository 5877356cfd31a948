"""The task record: a `Future` that also carries what a worker needs to run the task."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tasker._condition import FutureCondition
from tasker.errors import CancelledError

if TYPE_CHECKING:
    from tasker._core import Core

__all__ = ["RunningTask", "TaskFuture", "current_task"]

T = TypeVar("T")

_CURRENT: contextvars.ContextVar[TaskFuture[Any] | None] = contextvars.ContextVar(
    "tasker_current_task", default=None
)


_ENDED = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)
# Shared and immutable: the first add_done_callback replaces it with a list.
_NO_CALLBACKS: Any = ()


class TaskFuture(Future[T], Generic[T]):
    """The future `TaskManager.submit` returns; it also records the task for the workers.

    Beyond the `concurrent.futures.Future` API it exposes `task_id`, `priority`, `once` and
    `attempt`. `cancel()` on a queued task removes it from its queue at once.
    """

    # Future's own state lives in slots too: no per-instance __dict__ (see _condition.py).
    __slots__ = (
        "_condition",
        "_core",
        "_done_callbacks",
        "_exception",
        "_result",
        "_state",
        "_waiters",
        "attempt",
        "cancel_requested",
        "context",
        "fn",
        "once",
        "priority",
        "queued_at",
        "resource",
        "task_id",
        "worker_id",
    )

    def __init__(
        self,
        core: Core[Any],
        fn: Callable[[Any], T],
        task_id: int,
        *,
        priority: bool,
        once: bool,
    ) -> None:
        # Future.__init__ is replaced by its lean equivalent: same attributes, cheaper condition.
        self._condition = FutureCondition()  # type: ignore[assignment]
        self._state = PENDING
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Callable[[Future[T]], object]] = _NO_CALLBACKS
        self._core = core
        self.fn = fn
        self.task_id = task_id
        self.priority = priority
        self.once = once
        self.attempt = 0
        self.cancel_requested = False
        self.context = contextvars.copy_context()
        self.queued_at = time.perf_counter()
        self.resource: Any = None
        self.worker_id: int | None = None

    def cancel(self) -> bool:
        """Cancel the task if it has not started; a queued task leaves its queue at once."""
        if super().cancel():
            self._core.discard(self)
            return True
        return False

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        """Call `fn(future)` when the task ends; an exception it raises is logged, not raised."""
        guarded = self._core.guard_callback(fn)
        with self._condition:
            if self._state not in _ENDED:
                if self._done_callbacks is _NO_CALLBACKS:
                    self._done_callbacks = [guarded]
                else:
                    self._done_callbacks.append(guarded)
                return
        guarded(self)

    def resolve(self, result: T) -> bool:
        """Set the result unless the future already ended (kill() got there first)."""
        try:
            self.set_result(result)
        except InvalidStateError:
            return False
        return True

    def fail(self, error: BaseException) -> bool:
        """Set the exception unless the future already ended."""
        try:
            self.set_exception(error)
        except InvalidStateError:
            return False
        return True

    def abandon(self) -> bool:
        """End the task as cancelled even if it is running (`kill()`); `False` if already ended.

        `Future.cancel()` refuses running futures; this performs the same transition, so the
        caller sees `cancelled() is True` and `CancelledError` whether the task was queued or
        running, and `concurrent.futures.wait()` / `as_completed()` are notified as usual.
        """
        self.cancel_requested = True
        with self._condition:
            if self._state in _ENDED:
                return False
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True

    def __repr__(self) -> str:
        return f"<TaskFuture id={self.task_id} {self._state.lower()}>"


def call_in_task(task: TaskFuture[T], resource: Any) -> T:
    """Run the task's function on `resource` with `current_task()` pointing at it."""
    token = _CURRENT.set(task)
    try:
        return task.fn(resource)
    finally:
        _CURRENT.reset(token)


class RunningTask:
    """What a running task can learn about itself: see [`current_task`][tasker.current_task]."""

    __slots__ = ("_task",)

    def __init__(self, task: TaskFuture[Any]) -> None:
        self._task = task

    @property
    def task_id(self) -> int:
        """The task's id within its manager."""
        return self._task.task_id

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, and so on."""
        return self._task.attempt

    @property
    def priority(self) -> bool:
        """Whether the task came through the priority queue."""
        return self._task.priority

    @property
    def once(self) -> bool:
        """Whether the task is never run twice."""
        return self._task.once

    @property
    def worker_id(self) -> int | None:
        """The id of the worker running the task (`None` under `run_task`)."""
        return self._task.worker_id

    @property
    def resource(self) -> Any:
        """The resource the task runs on."""
        return self._task.resource

    @property
    def cancelled(self) -> bool:
        """`True` once the task should give up: the manager was killed."""
        return self._task.cancel_requested or self._task._core.killed

    def raise_if_cancelled(self) -> None:
        """Raise `CancelledError` if the task should give up."""
        if self.cancelled:
            raise CancelledError(f"task {self.task_id} was cancelled")

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on cancellation; return `True` if cancelled."""
        if self.cancelled:
            return True
        return self._task._core.wait_killed(seconds) or self.cancelled


def current_task() -> RunningTask | None:
    """The task running in this thread (or context), or `None` outside a tasker task.

    Long tasks use it to cooperate with `kill()`:
    `if tasker.current_task().cancelled: return`.
    """
    task = _CURRENT.get()
    return None if task is None else RunningTask(task)
