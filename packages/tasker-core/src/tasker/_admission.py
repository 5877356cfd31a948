"""Submissions waiting for room in a full queue (`with_queue_limit`).

A submission that finds the queues full and may wait joins the line as an `Admission`. The
engine (`_overload`) decides everything under the core's lock: when room frees up (a worker
takes a task, a queued task is cancelled or shed) it queues the first waiting task itself —
priority submissions before normal ones, first come first served within each — and marks the
admission admitted; when the manager stops, is killed or breaks, it gives every admission its
refusal. Only then, outside the lock, does it wake the waiter. The runtime only waits: a thread
blocks on a lock, a coroutine awaits a future. Nobody polls, and no waiter is forgotten: each
admission leaves the line exactly once, admitted, refused, or withdrawn by its own caller.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tasker._task import TaskRecord

__all__ = ["Admission", "Line", "Waiter"]


class Waiter(Protocol):
    """What a waiting submission blocks or awaits on; the core wakes it once."""

    def wake(self) -> None:
        """Release the waiting caller (called once, outside the core's lock)."""


class Admission:
    """One submission waiting for room: its task, its waiter, its patience, how its wait ended."""

    __slots__ = ("admitted", "error", "patience", "task", "waiter")

    def __init__(self, task: TaskRecord[Any], waiter: Waiter, patience: float | None) -> None:
        self.task = task
        self.waiter = waiter
        self.patience = patience  # seconds it waits at most; None: as long as it takes
        self.admitted = False  # the core queued the task: the caller gets its future
        self.error: BaseException | None = None  # the manager refused it (stopped, killed, ...)

    @property
    def waiting(self) -> bool:
        """Whether it is still in the line."""
        return not self.admitted and self.error is None


class Line:
    """The waiting submissions: priority ones first, first come first served within each."""

    __slots__ = ("_main", "_priority", "waiting")

    def __init__(self) -> None:
        self._priority: deque[Admission] = deque()
        self._main: deque[Admission] = deque()
        self.waiting = 0  # an attribute, not `__len__`: the hot paths read it

    def join(self, admission: Admission) -> None:
        """Wait at the back of the line of its kind."""
        (self._priority if admission.task.priority else self._main).append(admission)
        self.waiting += 1

    def first(self) -> Admission:
        """Remove and return the submission whose turn it is (someone waits)."""
        self.waiting -= 1
        return self._priority.popleft() if self._priority else self._main.popleft()

    def leave(self, admission: Admission) -> None:
        """Remove a submission that gave up waiting."""
        (self._priority if admission.task.priority else self._main).remove(admission)
        self.waiting -= 1

    def clear(self) -> list[Admission]:
        """Remove and return every waiting submission."""
        everyone = [*self._priority, *self._main]
        self._priority.clear()
        self._main.clear()
        self.waiting = 0
        return everyone
