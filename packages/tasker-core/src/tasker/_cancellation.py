"""Cancellation: a task ended from outside its attempt, by its caller or by its clock.

Its caller cancels a task through its future: a queued task ends at once (`discard`), in O(1):
the record stays in its deque, ended, and the worker that meets it skips it; a running one
(asyncio) is answered at once and its attempt interrupted (`cancel_running`). A timeout is the
clock cancelling the attempt: on threads a watcher reports the deadline (`deadline_passed`)
and the task is told to stop; on asyncio the attempt is cancelled and reports it
(`attempt_expired`). Either way the task ends `timed_out` and its worker is kept.

Whoever ends the task first wins, under the core's lock; the attempt that returns afterwards
finds it ended (`Core._end_attempt`) and only frees its worker.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tasker._task import TaskState, release

if TYPE_CHECKING:
    from tasker._core import Core
    from tasker._task import TaskRecord
    from tasker._worker import Worker

__all__ = ["Cancellation"]

_perf = time.perf_counter


class Cancellation:
    """One manager's cancellations by callers, and its timeouts."""

    __slots__ = ("_core",)

    def __init__(self, core: Core[Any]) -> None:
        self._core = core

    def discard(self, task: TaskRecord[Any]) -> bool:
        """Its caller cancels a task: end it as cancelled if it is still queued."""
        core = self._core
        overload = core.overload
        with core._lock:
            if task.state is not TaskState.QUEUED:
                return False
            task.state = TaskState.CANCELLED
            core.queue.forget(task)
            core._pending -= 1
            wake = core.closing and not core._pending
            admitted = overload.admit() if overload.line.waiting else None
        release(task)
        core._conclude(task, TaskState.CANCELLED)
        if admitted:
            overload.wake(admitted)
        if wake:
            core.wake.set()
        return True

    def cancel_running(self, task: TaskRecord[Any]) -> bool:
        """Its caller cancels a running task (asyncio): answer it now, interrupt the attempt."""
        core = self._core
        with core._lock:
            if task.state is not TaskState.RUNNING:
                return False
            task.state = TaskState.CANCELLED
            task.cancel_requested = True
        core.runtime.interrupt(task)
        core._conclude(task, TaskState.CANCELLED)
        return True

    def attempt_cancelled(self, worker: Worker, task: TaskRecord[Any]) -> None:
        """A running attempt was interrupted because its caller cancelled it (asyncio)."""
        release(task)
        core = self._core
        if core._end_attempt(worker, task, TaskState.CANCELLED):
            core._conclude(task, TaskState.CANCELLED)

    def deadline_passed(self, task: TaskRecord[Any], attempt: int, elapsed: float) -> None:
        """Attempt `attempt` of a thread task outlived its timeout: time it out if it still runs.

        The task is told to stop (`current_task().cancelled`); its worker is not replaced and
        picks up the next task once the overdue one returns.
        """
        core = self._core
        with core._lock:
            if task.attempt != attempt or task.state is not TaskState.RUNNING:
                return
            task.state = TaskState.TIMED_OUT
            task.cancel_requested = True
        core.runtime.interrupt(task)  # a place that can stop the attempt does so now
        core._conclude(
            task,
            TaskState.TIMED_OUT,
            _timeout_error(task),
            task.started_at - task.queued_at,
            elapsed,
        )

    def attempt_expired(self, worker: Worker, task: TaskRecord[Any], start: float) -> None:
        """An attempt was cancelled by its timeout (asyncio): settle it, keep the worker."""
        elapsed = _perf() - start
        release(task)
        task.cancel_requested = True
        core = self._core
        if core._end_attempt(worker, task, TaskState.TIMED_OUT):
            core._conclude(
                task, TaskState.TIMED_OUT, _timeout_error(task), start - task.queued_at, elapsed
            )


def _timeout_error(task: TaskRecord[Any]) -> TimeoutError:
    return TimeoutError(f"task {task.task_id} timed out after {task.timeout} s")
