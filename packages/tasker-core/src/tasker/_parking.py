"""Parked workers: an idle worker waits on its own wake-up, and a new task is handed to it.

A worker with nothing to run parks (`park`, or `Core.attempt_succeeded` in the same lock trip
as its last task's end) and waits on `Worker.wakeup`, its runtime's primitive (a lock for a
thread, a future for an asyncio task), released once per park. Whoever takes it off the list,
under the core's lock, leaves it what to do in `Worker.handoff` first:

- a task claimed for it (`Core.submit`): the task never enters a queue; it is running, the
  worker's current one, from the submission on, so `kill()` finds it and no cancellation of
  queued tasks takes it back;
- `LOOK`: tokens went out (a retry, `EXIT`, an admitted submission; see `tokens_sent`), take one.

The worker that has waited longest is woken first, as a shared queue of waiters would: the
one that parked last may not be asleep yet, and waking it would only wait for it to get there.

Nothing is ever queued while a worker is parked: a worker parks only when the queues and the
token channel are empty, under the lock, and a submission that finds a parked worker hands its
task over instead of queuing it. A token sent while workers are parked wakes one of them.

The books are the core's: the list of parked workers (`Core._parked`) changes only under its
lock; the flags on the worker (`parked`, `handoff`) too, except that the worker clears them
itself once back from its wait (`woken`). A parked worker has no attempt to interrupt: a
task handed to it and ended before it started is simply not started (`woken`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasker._queue import LOOK
from tasker._task import TaskState, release

if TYPE_CHECKING:
    from tasker._core import Core
    from tasker._task import TaskRecord
    from tasker._worker import Worker

__all__ = ["Parking"]

QUEUED = TaskState.QUEUED
RUNNING = TaskState.RUNNING


class Parking:
    """One manager's parked workers: parked, woken to take a token, or leaving their wait."""

    __slots__ = ("_core",)

    def __init__(self, core: Core[Any]) -> None:
        self._core = core

    def park(self, worker: Worker) -> bool:
        """`worker` has nothing to run: park it, unless a token is there to take (`False`)."""
        core = self._core
        queue = core.queue
        with core._lock:
            if queue.main_depth or queue.priority_depth or not queue.channel.empty():
                return False
            core._parked.append(worker)
            worker.parked = True
            return True

    def unpark(self, worker: Worker) -> bool:
        """A parked worker's wait ran out; `False` if it was woken meanwhile (its wake-up due)."""
        core = self._core
        with core._lock:
            if worker.handoff is not None:
                return False
            core._parked.remove(worker)
            worker.parked = False
            return True

    def tokens_sent(self, count: int = 1) -> None:
        """Tokens just went out: wake up to `count` parked workers to take them.

        Under the lock, always: a worker may be parking right now, having found the channel
        empty just before the tokens went out.
        """
        with self._core._lock:
            self.look_locked(count)

    def look_locked(self, count: int = 1) -> None:
        """`tokens_sent`, under the lock."""
        parked = self._core._parked
        for _ in range(min(count, len(parked))):
            worker = parked.popleft()
            worker.handoff = LOOK
            worker.wakeup.release()

    def woken(self, worker: Worker) -> TaskRecord[Any] | None:
        """`worker` is back from its wait: the task handed to it, or `None` (take a token).

        A task handed to it may have ended before it started (`kill()`, its caller's
        cancellation): the worker is then done with it, and runs nothing.
        """
        handed = worker.handoff
        worker.handoff = None
        worker.parked = False  # from here on, an interruption finds the attempt (`interrupt`)
        if handed is LOOK:
            return None
        task: TaskRecord[Any] = handed
        if task.state is not RUNNING:
            release(task)
            self._core._end_attempt(worker, task, task.state)
            return None
        return task

    def leave(self, worker: Worker) -> None:
        """`worker` leaves its parked wait without its wake-up (interrupted, or leaving).

        What it was woken for goes to another: a task handed to it goes back to the front of
        its queue, unstarted, and a `LOOK` to the next parked worker. A task handed to it and
        ended meanwhile is done with, as `woken` would.
        """
        core = self._core
        with core._lock:
            handed = worker.handoff
            worker.handoff = None
            if worker.parked and handed is None:
                core._parked.remove(worker)
            worker.parked = False
            if handed is None:
                return
            if handed is LOOK:
                self.look_locked()
                return
            if handed.state is RUNNING:
                worker.current = None
                handed.state = QUEUED
                core.queue.put_front(handed)
                self.look_locked()
                return
        release(handed)
        core._end_attempt(worker, handed, handed.state)
