"""The manager's state and its ways out: refusing work, stop, cancel, kill, finish.

The manager's lifecycle is one `ManagerState`, moved only by `Shutdown.move`, which knows every
allowed move (the table `MOVES`) and keeps the three reads the hot paths make
(`Core.accepting`, `Core.closing`, `Core.killed`) in step with it. The state is the core's
(`Core._state`); every move is made under the core's lock.

`stop()` refuses new work (`begin_stop`) and leaves the supervisor to finish once every task
has ended; `kill()` ends every task at once: queued ones cancelled, running ones abandoned.
The finish releases the workers and, once they have exited, marks the manager stopped. Like
the rest of the engine, each step decides under the lock and tells, wakes and interrupts
outside it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from tasker._queue import EXIT
from tasker._task import TaskState, release
from tasker.errors import ManagerClosedError
from tasker.events import Event
from tasker.stats import KillReport, ManagerState

if TYPE_CHECKING:
    from tasker._core import Core
    from tasker._worker import Worker

__all__ = ["Shutdown"]


class Shutdown:
    """One manager's lifecycle state machine, and how it stops, is killed and finishes."""

    __slots__ = ("_core", "_killed", "_terminated", "leaving")

    MOVES: Final = {
        ManagerState.STARTING: {ManagerState.RUNNING, ManagerState.STOPPED, ManagerState.KILLED},
        ManagerState.RUNNING: {ManagerState.BROKEN, ManagerState.STOPPING, ManagerState.KILLED},
        ManagerState.BROKEN: {ManagerState.RUNNING, ManagerState.STOPPING, ManagerState.KILLED},
        ManagerState.STOPPING: {ManagerState.STOPPED, ManagerState.KILLED},
        ManagerState.STOPPED: set(),
        ManagerState.KILLED: set(),
    }
    """Every move the lifecycle allows: `build()` opens, a failed build or `stop()` closes,
    `kill()` ends any state that is not final, broken and running alternate."""

    def __init__(self, core: Core[Any]) -> None:
        self._core = core
        runtime = core.runtime
        self.leaving = runtime.shutdown  # workers must leave: drained, killed, failed build
        self._killed = runtime.killed_signal
        self._terminated = runtime.terminated

    def move(self, to: ManagerState) -> None:
        """The one transition of the manager's state (under the lock)."""
        core = self._core
        if to not in self.MOVES[core._state]:
            raise AssertionError(f"manager state cannot move from {core._state} to {to}")
        core._state = to
        core.accepting = to is ManagerState.RUNNING
        core.closing = to in (ManagerState.STOPPING, ManagerState.STOPPED, ManagerState.KILLED)
        core.killed = to is ManagerState.KILLED

    # ------------------------------------------------------------ refusing

    def refusal(self) -> RuntimeError:
        """The error explaining why work is refused right now."""
        core = self._core
        if core._state is ManagerState.BROKEN:
            return core.workforce.broken()
        state = core._state.value
        return ManagerClosedError(
            f"cannot submit tasks: manager {core.config.name!r} was {state}"
            if state == "killed"
            else f"cannot submit tasks: manager {core.config.name!r} is {state}"
        )

    def check_open(self, action: str) -> None:
        """Raise `ManagerClosedError` if the manager was stopped or killed."""
        core = self._core
        if core.closing or core.killed:
            state = core._state.value
            raise ManagerClosedError(f"cannot {action} manager {core.config.name!r}: it is {state}")

    # ------------------------------------------------------------- stopping

    def begin_stop(self) -> None:
        """Refuse new work; the supervisor finishes the shutdown once everything has drained."""
        core = self._core
        with core._lock:
            if core.closing:
                return
            self.move(ManagerState.STOPPING)
            pending = core._pending
            refused = core.overload.refuse()
        core.log(logging.INFO, Event.MANAGER_STOPPING, pending_tasks=pending)
        core.overload.wake(refused)
        core.wake.set()

    def cancel_queued(self) -> int:
        """Stop gracefully, but cancel every queued task first; return how many were cancelled.

        Running tasks finish as usual, and so do tasks handed to a parked worker when they were
        submitted (`Executor.shutdown(cancel_futures=True)`).
        """
        self.begin_stop()
        core = self._core
        with core._lock:
            queued = core.queue.drain()
            for task in queued:
                task.state = TaskState.CANCELLED
            core._pending -= len(queued)
        for task in queued:
            release(task)
            core._conclude(task, TaskState.CANCELLED)
        core.wake.set()  # the supervisor checks whether anything is left to wait for
        return len(queued)

    def kill(self) -> KillReport:
        """Refuse new work, cancel queued tasks, abandon running ones, tear everything down.

        Every task that has not ended is ended here, under the lock: queued ones count as
        cancelled, running ones (their worker's current task) as abandoned.
        """
        core = self._core
        with core._lock:
            if core._state is ManagerState.KILLED or core._state is ManagerState.STOPPED:
                return KillReport(cancelled_tasks=0, abandoned_tasks=0)
            self.move(ManagerState.KILLED)
            self.leaving.set()
            refused = core.overload.refuse()
            queued = core.queue.drain()
            running = [
                task
                for w in core.workers
                for task in (w.current, w.ahead)
                if task is not None and task.state is TaskState.RUNNING
            ]
            for task in queued:
                task.state = TaskState.CANCELLED
            for task in running:
                task.state = TaskState.CANCELLED
                task.cancel_requested = True
            core._pending = 0
            live = len(core.workers)
        core.overload.wake(refused)
        for task in queued:
            release(task)
        for task in running:
            core.runtime.interrupt(task)
        self._killed.set()
        for task in queued:
            core._conclude(task, TaskState.CANCELLED)
        for task in running:
            core._conclude(task, TaskState.CANCELLED)
            core.telemetry.task_abandoned(task)
        core.queue.send(EXIT, live)
        core.parking.tokens_sent(live)
        core.wake.set()
        report = KillReport(cancelled_tasks=len(queued), abandoned_tasks=len(running))
        core.log(
            logging.WARNING,
            Event.MANAGER_KILLED,
            cancelled_tasks=report.cancelled_tasks,
            abandoned_tasks=report.abandoned_tasks,
        )
        return report

    # ------------------------------------------------------------ finishing

    def finish_begin(self) -> list[Worker]:
        """The supervisor's last act begins: release every worker; return them to join."""
        core = self._core
        with core._lock:
            self.leaving.set()
            workers = list(core.workers)
        # one EXIT per worker; after kill() this repeats its tokens, which is harmless and
        # reaches a burst worker started while kill() was taking its snapshot
        core.queue.send(EXIT, len(workers))
        core.parking.tokens_sent(len(workers))
        return workers

    def finish_end(self) -> None:
        """Every worker has exited and every resource is destroyed."""
        core = self._core
        with core._lock:
            if not core.killed:
                self.move(ManagerState.STOPPED)
        core.telemetry.manager_stopped(core.killed)
        self._terminated.set()
