"""Tasks claimed ahead: a worker's next task, claimed while its current one runs.

A place that sends tasks ahead (`sends_ahead`, the process executor) hands its child the next
task while the current one runs, so the child starts it as soon as the current one returns.
The worker claims that task here (`claim`): it leaves the queue and is running as far as
`kill()` and `stop()` are concerned, but its attempt starts, and is counted, only when it
becomes the worker's current task (`promote`, or `Core.attempt_succeeded` in the same lock
trip). A task claimed ahead and never started goes back to the front of its queue
(`withdraw`).

The books are the core's: the claim is made on the core's queue, under its lock, and recorded
on the worker (`Worker.ahead`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tasker._queue import EXIT, TASK
from tasker._task import TaskState

if TYPE_CHECKING:
    from tasker._core import Core
    from tasker._task import TaskRecord
    from tasker._worker import Worker

__all__ = ["Ahead"]

QUEUED = TaskState.QUEUED
RUNNING = TaskState.RUNNING


class Ahead:
    """One manager's claims ahead: made, promoted to current, or withdrawn."""

    __slots__ = ("_core",)

    def __init__(self, core: Core[Any]) -> None:
        self._core = core

    def claim(self, worker: Worker, take: Callable[[], object]) -> TaskRecord[Any] | None:
        """While its current task runs, `worker` claims the next queued one to run after it.

        `take` is the runtime's non-blocking take of a token (`NO_TOKEN` when there is none);
        an `EXIT` token taken sets `worker.leaving`. Nothing is claimed ahead with a queue
        limit or a maximum queue wait (the room and the wait are those of the queue), nor by a
        burst worker the policy may retire.
        """
        core = self._core
        with core._lock:
            queue = core.queue
            if (
                core.killed
                or core._overload
                or not (queue.main_depth or queue.priority_depth)
                or (worker.burst and core._retire_quota > 0)
            ):
                return None
            token = take()
            if token is TASK:
                task = queue.take()
                if task is not None:
                    core._claim(worker, task, ahead=True)
                return task
            if token is EXIT:
                worker.leaving = True
            return None

    def promote(self, worker: Worker) -> TaskRecord[Any] | None:
        """The task `worker` claimed ahead becomes its current one, about to start.

        `None` if it ended meanwhile (`kill()`): it never starts.
        """
        with self._core._lock:
            return self.promote_locked(worker)

    def promote_locked(self, worker: Worker) -> TaskRecord[Any] | None:
        """`promote`, under the lock."""
        task = worker.ahead
        worker.ahead = None
        if task is not None and task.state is not RUNNING:
            task = None
        worker.current = task
        return task

    def withdraw(self, worker: Worker) -> None:
        """`worker` leaves the task it claimed ahead unstarted: queue it again, at the front.

        No attempt of it ran: none is counted.
        """
        with self._core._lock:
            self.withdraw_locked(worker)

    def withdraw_locked(self, worker: Worker) -> None:
        """`withdraw`, under the lock."""
        task = worker.ahead
        worker.ahead = None
        if task is not None and task.state is RUNNING:  # else it ended meanwhile (kill)
            task.state = QUEUED
            self._core.queue.put_front(task)
            if self._core._parked:
                self._core.parking.look_locked()
