"""Task records: futures that also carry what a worker needs to run the task.

`TaskFuture` (a `concurrent.futures.Future`) serves the thread executor, `AsyncTaskFuture` (an
`asyncio.Future`) the asyncio executor; the engine sees both through the `TaskRecord` protocol.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import types
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from tasker._condition import FutureCondition
from tasker.errors import CancelledError

if TYPE_CHECKING:
    from tasker._core import Core

__all__ = [
    "ENDED",
    "RunningTask",
    "TaskFuture",
    "TaskRecord",
    "TaskState",
    "current_task",
    "release",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_copy_context = contextvars.copy_context
_COROUTINE = types.CoroutineType
_perf = time.perf_counter

_CURRENT: contextvars.ContextVar[TaskRecord[Any] | None] = contextvars.ContextVar(
    "tasker_current_task", default=None
)


class TaskState(StrEnum):
    """Where a task is in its life; the terminal values are the outcomes hooks publish.

    ```text
                 Core.submit ----------------+
                     |                       | a worker is parked: handed to it
                     v                       |
       +-------> QUEUED --Cancellation.discard / Shutdown.kill, cancel_queued--> CANCELLED
       |             |---Workforce.creation_failed (broken) / Overload (shed)--> FAILED
       |     Core.next_task, Core.attempt_succeeded or Ahead.claim (a worker claims it)
       |             |                       |
       |             v                       |
       +--------- RUNNING <------------------+
       |                 |--Core.attempt_succeeded----------------------------> COMPLETED
       |                 |--Core.attempt_failed (no retry)--------------------> FAILED
       |                 |--Cancellation.deadline_passed / attempt_expired----> TIMED_OUT
       |                 +--Shutdown.kill / Cancellation.cancel_running-------> CANCELLED
     Core.attempt_failed (retry); unstarted: Ahead.withdraw, Parking.leave
    ```

    Every move happens under the engine's lock; a move out of a terminal state never happens,
    so whoever loses a race to end a task (a worker finishing as `kill()` cancels it, a deadline
    passing as the attempt returns) finds it ended and does nothing. `Core._conclude` performs
    the terminal steps of the winner, once.
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


ENDED = frozenset((TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.CANCELLED))
"""The terminal states."""

_QUEUED = TaskState.QUEUED


class TaskRecord(Protocol[T_co]):
    """What the engine needs of a task, whichever executor runs it."""

    state: TaskState
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    task_id: int
    timeout: float | None
    priority: bool
    once: bool
    attempt: int
    cancel_requested: bool
    context: contextvars.Context
    queued_at: float
    started_at: float
    resource: Any
    worker_id: int | None

    _core: Core[Any]  # the engine of the manager the task belongs to

    def set_running_or_notify_cancel(self) -> bool:
        """Mark the task started; `False` if its caller cancelled it first."""
        ...

    def _resolve(self, result: Any) -> bool:
        """Deliver the result unless the task already ended."""
        ...

    def _fail(self, error: BaseException) -> bool:
        """Deliver an exception unless the task already ended."""
        ...

    def _abandon(self) -> bool:
        """End the task as cancelled, whatever its state."""
        ...

    def cancelled(self) -> bool:
        """Whether the task ended cancelled."""
        ...

    def done(self) -> bool:
        """Whether the task has its outcome."""
        ...


_ENDED = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)
_STARTABLE = (PENDING, RUNNING)

# what both kinds of record carry, besides their future's own state
_RECORD_SLOTS = (
    "_core",
    "args",
    "attempt",
    "cancel_requested",
    "context",
    "fn",
    "once",
    "priority",
    "queued_at",
    "resource",
    "started_at",
    "state",
    "task_id",
    "timeout",
    "worker_id",
)


class _RecordFields:
    """The typed fields behind `_RECORD_SLOTS` (each record class declares the slots)."""

    __slots__ = ()
    _core: Core[Any]
    state: TaskState
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    task_id: int
    priority: bool
    once: bool
    timeout: float | None
    attempt: int
    cancel_requested: bool
    context: contextvars.Context
    queued_at: float
    started_at: float
    resource: Any
    worker_id: int | None


def _init_record(  # noqa: PLR0917 - hot path: a positional call is cheaper
    record: Any,  # a subclass of _RecordFields, which declares the slots
    core: Core[Any],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    task_id: int,
    priority: bool,
    once: bool,
    timeout: float | None,
) -> None:
    """Fill the `_RECORD_SLOTS` of a new record: queued now, in the caller's context."""
    record._core = core
    record.state = _QUEUED
    record.fn = fn
    record.args = args
    record.task_id = task_id
    record.priority = priority
    record.once = once
    record.timeout = timeout
    record.attempt = 0
    record.cancel_requested = False
    record.context = _copy_context()
    record.queued_at = _perf()
    record.started_at = 0.0
    record.resource = None
    record.worker_id = None


def _ended(resource: object) -> Any:
    raise RuntimeError("this task has ended: it is never run again")


_NO_CONTEXT = contextvars.Context()


def release(record: TaskRecord[Any]) -> None:
    """A task ended for good: drop what only running it needed.

    Its function (with whatever it closes over), its context and its resource are let go, so a
    future the caller keeps holds its outcome and no more. Only the party that ends the task's
    last run calls this: the worker, or whoever took it out of its queue.
    """
    record.fn = _ended
    record.args = ()
    record.context = _NO_CONTEXT
    record.resource = None


# Shared and immutable: the first add_done_callback replaces it with a list.
_NO_CALLBACKS: Any = ()


class TaskFuture(Future[T], _RecordFields, Generic[T]):
    """The future `TaskManager.submit` returns; it also records the task for the workers.

    Beyond the `concurrent.futures.Future` API it exposes `task_id`, `priority`, `once` and
    `attempt`. `cancel()` on a queued task removes it from its queue at once. Managers make
    them (see `new_task_future`); they are not meant to be constructed directly.
    """

    # Future's own state lives in slots too: no per-instance __dict__ (see _condition.py).
    __slots__ = (
        "_condition",
        "_done_callbacks",
        "_exception",
        "_result",
        "_state",
        "_waiters",
        *_RECORD_SLOTS,
    )
    _condition: FutureCondition  # type: ignore[assignment]  # a lean one (see _condition.py)
    _result: Any
    _exception: BaseException | None
    _waiters: list[Any]
    _done_callbacks: list[Callable[[Future[Any]], object]]

    def cancel(self) -> bool:
        """Cancel the task if it has not started; a queued task ends at once, as cancelled."""
        return self._core.cancellation.discard(self) or self.cancelled()

    def set_running_or_notify_cancel(self) -> bool:
        """Mark the task started; `False` if it ended first (its caller cancelled it).

        A task is only ever cancelled through the engine, which ends its future at once, and
        a task claimed ahead of its start and given back unstarted is claimed again with its
        future running: either way this is a cheaper `Future.set_running_or_notify_cancel`.
        """
        with self._condition.lock:
            if self._state in _STARTABLE:
                self._state = RUNNING
                return True
        return False

    def result(self, timeout: float | None = None) -> T:
        """The task's result, once it has one; raise its error, `CancelledError` or `TimeoutError`.

        `Future.result`, written out: the waiting caller's every step is on the task's path.
        """
        condition = self._condition
        with condition.lock:
            if self._state not in _ENDED:
                condition.wait(timeout)
            state = self._state
        if state == FINISHED:
            if self._exception is None:
                return self._result  # type: ignore[no-any-return]
            try:
                raise self._exception
            finally:
                del self  # the traceback keeps this frame: not the future too
        if state in _STARTABLE:  # still waiting: the timeout ran out
            raise TimeoutError
        raise CancelledError

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        """Call `fn(future)` when the task ends; an exception it raises is logged, not raised."""
        guarded = self._core.telemetry.guard_callback(fn)
        with self._condition.lock:
            if self._state not in _ENDED:
                if self._done_callbacks is _NO_CALLBACKS:
                    self._done_callbacks = [guarded]
                else:
                    self._done_callbacks.append(guarded)
                return
        guarded(self)

    def _resolve(self, result: T) -> bool:
        """Set the result unless the future already ended (kill() got there first).

        `Future.set_result`, written out: every completed task's path.
        """
        condition = self._condition
        with condition.lock:
            if self._state in _ENDED:
                return False
            self._result = result
            self._state = FINISHED
            for waiter in self._waiters:
                waiter.add_result(self)
            condition.notify_all()
        if self._done_callbacks:
            self._invoke_callbacks()  # type: ignore[attr-defined]
        return True

    def _fail(self, error: BaseException) -> bool:
        """Set the exception unless the future already ended."""
        try:
            self.set_exception(error)
        except InvalidStateError:
            return False
        return True

    def _abandon(self) -> bool:
        """End the task as cancelled even if it is running (`kill()`); `False` if already ended.

        `Future.cancel()` refuses running futures; this performs the same transition, so the
        caller sees `cancelled() is True` and `CancelledError` whether the task was queued or
        running, and `concurrent.futures.wait()` / `as_completed()` are notified as usual.
        """
        self.cancel_requested = True
        with self._condition.lock:
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


def call_in_task(task: TaskRecord[Any], resource: Any) -> Any:
    """Run the task's function on `resource` with `current_task()` pointing at it."""
    token = _CURRENT.set(task)
    try:
        args = task.args
        result = task.fn(resource, *args) if args else task.fn(resource)
    finally:
        _CURRENT.reset(token)
    if result.__class__ is _COROUTINE:
        result.close()  # never awaited: no "was never awaited" warning at exit
        raise TypeError(
            f"{_name(task.fn)} returned a coroutine: TaskManager runs plain functions in "
            "worker threads; run coroutine functions on an AsyncTaskManager "
            "(TaskManager.builder().with_executor('asyncio'), or AsyncTaskManager.builder())"
        )
    return result


def call_as(task: Any, call: Callable[[], T]) -> T:
    """`call()` with `current_task()` pointing at `task`, until it returns.

    For a task run in another process (`tasker.serialization.RemoteTask`), whose `call` may
    also run a coroutine to its end: the coroutine sees the task too.
    """
    token = _CURRENT.set(task)
    try:
        return call()
    finally:
        _CURRENT.reset(token)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def not_awaitable(task: TaskRecord[Any], outcome: object) -> TypeError:
    """The error for a plain function given to an `AsyncTaskManager`."""
    return TypeError(
        f"{_name(task.fn)} returned {type(outcome).__name__}, not an awaitable: "
        "AsyncTaskManager runs coroutine functions on its event loop, where a blocking call "
        "would stall everything; run blocking functions on a TaskManager, or wrap them: "
        "`async def task(r): return await asyncio.to_thread(blocking, r)`"
    )


def call_in_scope(
    task: TaskRecord[Any],
    resource: Any,
    worker_id: int | None,
    call: Callable[[TaskRecord[Any], Any], Any] = call_in_task,
) -> Any:
    """`call(task, resource)` inside the plugins' attempt context managers, if they give any.

    `call` runs the attempt: `call_in_task` here, a place's remote call for a task that runs
    in another process (its span still covers the attempt, seen from the manager).
    """
    scope = task._core.observers.attempt_scope(task, worker_id)
    if scope is None:
        return call(task, resource)
    scope.enter()
    try:
        result = call(task, resource)
    except BaseException as error:
        scope.exit(error)
        raise
    scope.exit(None)
    return result


class RunningTask:
    """What a running task can learn about itself: see [`current_task`][tasker.current_task]."""

    __slots__ = ("_task",)

    def __init__(self, task: TaskRecord[Any]) -> None:
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
        """Sleep up to `seconds`, waking early on cancellation; return `True` if cancelled.

        For thread tasks. Asyncio tasks are cancelled for real: use `asyncio.sleep`.
        """
        if self.cancelled:
            return True
        return self._task._core.runtime.wait_killed(seconds) or self.cancelled


def current_task() -> RunningTask | None:
    """The task running in this thread (or context), or `None` outside a tasker task.

    Long tasks use it to cooperate with `kill()`:
    `if tasker.current_task().cancelled: return`.
    """
    task = _CURRENT.get()
    return None if task is None else RunningTask(task)


class AsyncTaskFuture(asyncio.Future[T], _RecordFields):
    """The awaitable `AsyncTaskManager.submit` returns; it also records the task.

    Cancelling it (or the `await` of a caller) cancels that task only: a queued task leaves its
    queue, a running one gets `CancelledError` inside and its worker carries on.
    """

    __slots__ = _RECORD_SLOTS

    def cancel(self, msg: Any | None = None) -> bool:
        """Cancel the task: ended at once if queued, interrupted if running."""
        if self.done():
            return False
        return self._core.cancellation.discard(self) or self._core.cancellation.cancel_running(self)

    def set_running_or_notify_cancel(self) -> bool:
        """Mark the task started; `False` if its caller cancelled it first."""
        return not self.done()

    def _resolve(self, result: T) -> bool:
        """Set the result unless the future already ended."""
        if self.done():
            return False
        self.set_result(result)
        return True

    def _fail(self, error: BaseException) -> bool:
        """Set the exception unless the future already ended."""
        if self.done():
            return False
        if isinstance(error, asyncio.CancelledError | StopIteration):
            # asyncio.Future refuses these; the caller still sees the task cancelled
            return super().cancel()
        self.set_exception(error)
        return True

    def _abandon(self) -> bool:
        """End the task as cancelled (`kill()`); `False` if it already ended."""
        self.cancel_requested = True
        if self.done():
            return False
        return super().cancel()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled() else "done" if self.done() else "pending"
        return f"<AsyncTaskFuture id={self.task_id} {state}>"


_new_object = object.__new__


def new_task_future(  # noqa: PLR0917 - hot path: a positional call is cheaper
    core: Core[Any],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    task_id: int,
    priority: bool,
    once: bool,
    timeout: float | None,
) -> TaskFuture[Any]:
    """A queued `TaskFuture` for `fn(resource, *args)`.

    Made without `Future.__init__`, whose condition costs more than the lean one used here.
    """
    record: TaskFuture[Any] = _new_object(TaskFuture)
    record._condition = FutureCondition()
    record._state = PENDING
    record._result = None
    record._exception = None
    record._waiters = []
    record._done_callbacks = _NO_CALLBACKS
    _init_record(record, core, fn, args, task_id, priority, once, timeout)
    return record


def new_async_task_future(  # noqa: PLR0917 - hot path: a positional call is cheaper
    loop: asyncio.AbstractEventLoop,
    core: Core[Any],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    task_id: int,
    priority: bool,
    once: bool,
    timeout: float | None,
) -> AsyncTaskFuture[Any]:
    """A queued `AsyncTaskFuture` for `fn(resource, *args)`, on the manager's event `loop`."""
    record: AsyncTaskFuture[Any] = AsyncTaskFuture(loop=loop)
    _init_record(record, core, fn, args, task_id, priority, once, timeout)
    return record
