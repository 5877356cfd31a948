"""Overload: the queue limit, the submissions waiting for room, and shedding.

With `with_queue_limit`, the queues hold at most `queue_limit` tasks: a submission that finds
them full is refused (`QueueFullError`) or, if it may wait, lines up (see `_admission`) until
room frees up. With `max_queue_wait`, a task that waited longer than that in the queue is shed
(failed with `TaskExpiredError`) when a worker takes it, instead of run late.

`Overload` keeps the core's books, not books of its own: it works under the core's lock, on the
core's queue and counts (`_pending`, `_parked`), and concludes tasks through the core. Methods
that say "under the lock" are called with `Core._lock` held; the others take it themselves, and
wake callers and fail tasks outside it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tasker._admission import Admission, Line
from tasker._queue import TASK
from tasker._task import TaskState, release
from tasker.errors import QueueFullError, TaskExpiredError

if TYPE_CHECKING:
    from tasker._core import Core
    from tasker._task import TaskRecord

__all__ = ["Overload"]

_perf = time.perf_counter

FAILED = TaskState.FAILED


class Overload:
    """One manager's queue limit, its line of waiting submissions, and its maximum queue wait."""

    __slots__ = ("_core", "limit", "line", "max_wait")

    def __init__(self, core: Core[Any]) -> None:
        self._core = core
        config = core.config
        self.limit = config.queue_limit  # tasks queued at most; None: no limit
        self.max_wait = config.max_queue_wait  # seconds a task may wait queued; None: forever
        self.line = Line()  # submissions waiting for room

    # ------------------------------------------------------------- the limit

    def full(self) -> bool:
        """Whether the queues hold `queue_limit` tasks (under the lock; a limit is set)."""
        assert self.limit is not None
        queue = self._core.queue
        return queue.main_depth + queue.priority_depth >= self.limit

    def line_up(self, task: TaskRecord[Any], patience: float | None) -> Admission | None:
        """The queues are full: line `task` up if it may wait, else `None` (under the lock)."""
        if patience == 0:
            return None
        admission = Admission(task, self._core.runtime.new_waiter(), patience)
        self.line.join(admission)
        return admission

    def lined_up(self, task: TaskRecord[Any], admission: Admission | None) -> Admission:
        """A submission found the queues full: the admission its caller waits on.

        A submission that may not wait gets `QueueFullError` instead (outside the lock).
        """
        if admission is None:
            raise self.rejected(task)
        return admission

    def rejected(self, task: TaskRecord[Any]) -> QueueFullError:
        """Count a submission refused for want of room; return the error its caller gets."""
        core = self._core
        core.telemetry.task_rejected(task, self.limit)
        return QueueFullError(
            f"cannot submit a task: the queue of manager {core.config.name!r} is full "
            f"({self.limit} tasks)"
        )

    # -------------------------------------------------------------- the line

    def admit(self) -> list[Admission]:
        """Queue waiting submissions while there is room (under the lock); return them."""
        line = self.line
        admitted = []
        while line.waiting and not self.full():
            admission = line.first()
            task = admission.task
            task.queued_at = _perf()  # its queue wait starts now, not when it lined up
            self._enqueue(task)
            admission.admitted = True
            admitted.append(admission)
        return admitted

    def _enqueue(self, task: TaskRecord[Any]) -> None:
        """Queue a task admitted from the line (under the lock), as `Core.submit` does."""
        core = self._core
        core._pending += 1
        core.telemetry.collector.record_arrival(task)
        core.queue.add(task)  # its token goes out with its caller's release (`wake`)

    def refuse(self) -> list[Admission]:
        """The manager no longer accepts work: refuse every waiting submission (under the lock)."""
        refused = self.line.clear()
        for admission in refused:
            admission.error = self._core.shutdown.refusal()
        return refused

    def wake(self, admissions: list[Admission]) -> None:
        """Release the callers of admissions just decided (outside the lock).

        An admitted task's token goes out here, after its queued event, as `Core.submit`
        sends a task's token: no worker starts it before observers hear it queued.
        """
        core = self._core
        for admission in admissions:
            if admission.admitted:
                try:
                    core.telemetry.task_queued(admission.task)
                finally:
                    core.queue.channel.put_nowait(TASK)
                    if core._parked:  # its task is queued: no worker parks until it is taken
                        core.parking.tokens_sent()
            admission.waiter.wake()

    # ------------------------------------------- what a waiting caller hears

    def admitted(self, admission: Admission) -> TaskRecord[Any]:
        """A waiting submission was woken: its queued task, or the manager's refusal raised."""
        if admission.error is not None:
            raise admission.error
        return admission.task

    def gave_up(self, admission: Admission) -> TaskRecord[Any]:
        """A waiting submission's wait ran out: `QueueFullError`, unless decided meanwhile."""
        with self._core._lock:
            waiting = admission.waiting
            if waiting:
                self.line.leave(admission)
        if waiting:
            raise self.rejected(admission.task)
        return self.admitted(admission)

    def interrupted(self, admission: Admission) -> None:
        """A waiting submission's caller was interrupted: leave the line, or cancel its task."""
        with self._core._lock:
            waiting = admission.waiting
            if waiting:
                self.line.leave(admission)
        if not waiting and admission.admitted:
            self._core.cancellation.discard(
                admission.task
            )  # nobody will hold its future: do not run it

    # -------------------------------------------------------------- shedding

    def make_room(
        self, task: TaskRecord[Any] | None
    ) -> tuple[list[TaskRecord[Any]], TaskRecord[Any] | None, list[Admission]]:
        """A task was taken: shed it and the next if they waited too long, admit waiting ones.

        Under the lock; returns the shed tasks, the task to run (if any), and the admitted
        submissions.
        """
        shed: list[TaskRecord[Any]] = []
        if task is not None and self.max_wait is not None:
            shed, task = self._shed(task)
        admitted = self.admit() if self.line.waiting else []
        return shed, task, admitted

    def _shed(self, task: TaskRecord[Any]) -> tuple[list[TaskRecord[Any]], TaskRecord[Any] | None]:
        """Shed `task`, just taken, and the next ones while they waited too long.

        Under the lock; returns the shed tasks and the first task still in time, if any. The
        worker took one token for several tasks: the tokens of the shed ones are skipped
        later, as a cancelled task's are.
        """
        assert self.max_wait is not None
        core = self._core
        oldest = _perf() - self.max_wait
        shed: list[TaskRecord[Any]] = []
        taken: TaskRecord[Any] | None = task
        while taken is not None and taken.queued_at < oldest:
            taken.state = FAILED
            shed.append(taken)
            taken = core.queue.take()
        core._pending -= len(shed)
        return shed, taken

    def fail_shed(self, shed: list[TaskRecord[Any]]) -> None:
        """Fail tasks shed for waiting too long (outside the lock)."""
        max_wait = self.max_wait
        assert max_wait is not None
        core = self._core
        now = _perf()
        for task in shed:
            release(task)
            waited = now - task.queued_at
            core.telemetry.task_shed(task, waited, max_wait)
            error = TaskExpiredError(
                f"task {task.task_id} was shed: it waited {waited:.3f} s in the queue, longer "
                f"than the {max_wait} s allowed",
                waited=waited,
                max_wait=max_wait,
            )
            core._conclude(task, FAILED, error, record=False)
        if core.closing:
            with core._lock:
                wake = not core._pending
            if wake:
                core.wake.set()
