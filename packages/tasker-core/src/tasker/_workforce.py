"""The workforce: the books of a manager's workers, and how many it should have.

The worker lifecycle (`_lifecycle.worker_steps`) reports each step of a worker here: registered,
its resource ready, released, replaced under a new id, exited. From those reports the workforce
decides when the manager is broken (no worker could create its resource for `broken_after`
seconds: queued tasks fail, new ones are refused) and when it has recovered. Once per
supervisor tick it asks the scaler for a target and decides how many workers to start, or how
many idle burst workers may retire (`Core._retire_quota`, which they claim in `try_retire`).

The books are the core's: the worker list, the retirement quota and the manager's state live on
`Core` and change under its lock; only what no hot path reads (how many workers hold a
resource, since when creations have failed) is kept here, under that same lock.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

from tasker._admission import Admission
from tasker._scaler import Scaler
from tasker._task import TaskState, release
from tasker._worker import Worker
from tasker.errors import ManagerBrokenError
from tasker.events import Event
from tasker.stats import ManagerState

if TYPE_CHECKING:
    from tasker._core import Core

__all__ = ["Workforce"]

FAILED = TaskState.FAILED


class Workforce:
    """One manager's workers: their starts and exits, the broken manager, scaling, retirement."""

    __slots__ = ("_core", "_failing_since", "_ids", "_last_create_error", "_ready", "_scaler")

    def __init__(self, core: Core[Any]) -> None:
        self._core = core
        self._scaler = Scaler(core.config, core.telemetry)
        self._ids = itertools.count(1)
        self._ready = 0  # workers holding a resource
        self._failing_since: float | None = None  # creations failing and nobody ready, since
        self._last_create_error: BaseException | None = None

    # ------------------------------------------------------ a worker's steps

    def new_worker(self, *, burst: bool) -> Worker:
        """Register a worker; the runtime starts its loop."""
        core = self._core
        worker = Worker(next(self._ids), burst=burst)
        with core._lock:
            core.workers.append(worker)
        return worker

    def creation_failed(self, worker: Worker, error: BaseException, failures: int) -> None:
        """A worker's `on_create` failed; declare the manager broken if nothing is alive."""
        core = self._core
        core.telemetry.create_failed(worker.worker_id, failures, error)
        with core._lock:
            self._last_create_error = error
            # broken only counts while running or stopping with nobody alive: a stop must not
            # wait for queued tasks that no worker will ever run
            state = core._state
            if self._ready or not (state is ManagerState.RUNNING or state is ManagerState.STOPPING):
                return
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
                return
            if now - self._failing_since < core.config.backoff.broken_after:
                return
            refused: list[Admission] = []
            if state is ManagerState.RUNNING:
                core.shutdown.move(ManagerState.BROKEN)
                refused = core.overload.refuse()
            elif not core.queue.main_depth + core.queue.priority_depth:
                return  # stopping, and the queues were failed already
            doomed = core.queue.drain()
            for task in doomed:
                task.state = FAILED
            core._pending -= len(doomed)
            wake = core.closing and not core._pending
        core.log(logging.ERROR, Event.MANAGER_BROKEN, failed_tasks=len(doomed), error=error)
        core.overload.wake(refused)
        for task in doomed:
            release(task)
            broken = ManagerBrokenError(
                f"task {task.task_id} cannot run: manager {core.config.name!r} is broken "
                f"(no worker could create its resource): {error!r}"
            )
            broken.__cause__ = error
            core._conclude(task, FAILED, broken, record=False)
        if wake:
            core.wake.set()

    def broken(self) -> ManagerBrokenError:
        """The error refusing work while the manager is broken."""
        error = ManagerBrokenError(
            f"manager {self._core.config.name!r} is broken: no worker could create its resource "
            f"for {self._core.config.backoff.broken_after} s; last error: "
            f"{self._last_create_error!r}"
        )
        error.__cause__ = self._last_create_error
        return error

    def ready(self, worker: Worker, place: Any) -> None:
        """A worker's place created its resource (see `tasker.executors.Place`)."""
        core = self._core
        worker.place = place
        worker.resource = place.resource
        if worker.starting_since is not None:  # what a new worker costs, for the policy
            self._scaler.started(time.monotonic() - worker.starting_since)
            worker.starting_since = None
        with core._lock:
            self._ready += 1
            self._failing_since = None
            recovered = core._state is ManagerState.BROKEN
            if recovered:
                core.shutdown.move(ManagerState.RUNNING)
        core.telemetry.worker_started(worker.worker_id, worker.burst)
        if recovered:
            core.log(logging.INFO, Event.MANAGER_RECOVERED, worker_id=worker.worker_id)

    def releasing(self, worker: Worker) -> Any:
        """A worker is about to destroy its resource; return its place."""
        place, worker.place, worker.resource = worker.place, None, None
        with self._core._lock:
            self._ready -= 1
        return place

    def replaced(self, worker: Worker) -> None:
        """A worker whose resource turned unhealthy starts afresh, under a new id."""
        old = worker.worker_id
        worker.worker_id = next(self._ids)
        worker.starting_since = time.monotonic()
        self._core.telemetry.worker_replaced(worker.worker_id, old)

    def exited(self, worker: Worker) -> None:
        """A worker's loop returned."""
        core = self._core
        if worker.parked or worker.handoff is not None:  # it left parked: nothing waits on it
            core.parking.leave(worker)
        with core._lock:
            core.workers.remove(worker)
        core.telemetry.worker_stopped(worker.worker_id)

    # ------------------------------------------------------------ retirement

    @property
    def retiring(self) -> bool:
        """Whether the policy wants burst workers to leave (a cheap read for worker loops)."""
        return self._core._retire_quota > 0

    def try_retire(self, worker: Worker) -> bool:
        """An idle burst worker asks whether it should leave."""
        if not worker.burst:
            return False
        core = self._core
        with core._lock:
            if core._retire_quota <= 0 or core.shutdown.leaving.is_set():
                return False
            if worker.handoff is not None:  # woken for a task or a token: it must take it
                return False
            core._retire_quota -= 1
            if worker.parked:  # parked by its last task and not woken: it waits for nothing
                worker.parked = False
                core._parked.remove(worker)
            return True

    # --------------------------------------------------------------- scaling

    def supervisor_tick(self) -> int | None:
        """One supervisor step: `None` when it is time to finish, else the workers to add."""
        core = self._core
        if core.killed:
            return None
        if core.closing:
            with core._lock:
                if not core._pending:
                    return None
        return self._plan_scaling()

    def _plan_scaling(self) -> int:
        core = self._core
        queued = core.queue.main_depth + core.queue.priority_depth
        target = self._scaler.target(list(core.workers), queued)
        if target is None:
            return 0
        with core._lock:
            if core.shutdown.leaving.is_set():
                return 0
            live = len(core.workers)
            if core.closing:  # winding down: idle bursts may leave, none are added
                target = min(target, live)
            grow = target - live
            previous_quota = core._retire_quota
            core._retire_quota = max(0, -grow)
        if grow > 0 or (grow < 0 and core._retire_quota != previous_quota):
            core.telemetry.scaled(live, target)
        return max(grow, 0)
