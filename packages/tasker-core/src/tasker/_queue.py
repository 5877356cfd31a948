"""The two task queues (priority and main) behind one wake-up channel.

Every queued task has one token on a channel (a `queue.SimpleQueue` for threads, an
`asyncio.Queue` on an event loop); a worker takes a token, then pops the priority queue first
and the main queue second. A new task's token is sent by the engine once the task is queued
and reported queued (`add`); a retry's goes with it (`put_front`). A token whose task was
removed (cancelled, or drained by `kill()`) finds both queues empty and is simply skipped.
Control messages travel on the same channel, behind the tasks already queued.

A cancelled task is not searched for: it is marked ended and stays in its deque until a worker
pops it and skips it (lazy deletion), so a cancellation costs O(1) at any depth. The engine calls
`take`, `forget` and `drain` under its lock.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final, Protocol

from tasker._task import TaskRecord, TaskState

__all__ = ["EXIT", "LOOK", "NO_TOKEN", "TASK", "Channel", "TaskQueue"]

EXIT: Final = object()
"""Control token: the worker that takes it exits."""

TASK: Final = None
"""The token of a queued task."""

LOOK: Final = object()
"""Not a token: what a parked worker is woken with when tokens went out (take one)."""

NO_TOKEN: Final = object()
"""Not a token: what a runtime's non-blocking take yields when the channel is empty."""

_QUEUED = TaskState.QUEUED


class Channel(Protocol):
    """Where tokens go: any FIFO with a non-blocking put."""

    def put_nowait(self, item: object, /) -> None:
        """Add a token without blocking."""

    def empty(self) -> bool:
        """Whether no token is waiting (a worker parks only then, see `Core.park`)."""


class TaskQueue:
    """Priority and main FIFO queues; retried tasks re-enter at the front of their queue."""

    __slots__ = ("_dead_main", "_dead_priority", "_main", "_priority", "channel")

    def __init__(self, channel: Channel) -> None:
        self._priority: deque[TaskRecord[Any]] = deque()
        self._main: deque[TaskRecord[Any]] = deque()
        self._dead_priority = 0  # ended tasks still in `_priority`, skipped when met
        self._dead_main = 0
        self.channel = channel

    def add(self, task: TaskRecord[Any]) -> None:
        """Queue `task` at the back of its queue; its `TASK` token is the caller's to send.

        Until the token is sent, no worker is woken for the task, and no worker that takes
        tokens without waiting can claim it.
        """
        (self._priority if task.priority else self._main).append(task)

    def put_front(self, task: TaskRecord[Any]) -> None:
        """Queue `task` at the front of its queue (a retry keeps its turn)."""
        (self._priority if task.priority else self._main).appendleft(task)
        self.channel.put_nowait(TASK)

    def send(self, token: object, count: int = 1) -> None:
        """Send a control token to `count` workers, behind every task already queued."""
        for _ in range(count):
            self.channel.put_nowait(token)

    def take(self) -> TaskRecord[Any] | None:
        """Pop the next queued task for a `TASK` token, priority first; `None` if there is none.

        Ended tasks met on the way (cancelled while queued) are dropped.
        """
        priority = self._priority
        while priority:  # tested first: raising IndexError for every normal task costs more
            task = priority.popleft()
            if task.state is _QUEUED:
                return task
            self._dead_priority -= 1
        main = self._main
        while main:
            task = main.popleft()
            if task.state is _QUEUED:
                return task
            self._dead_main -= 1
        return None

    def forget(self, task: TaskRecord[Any]) -> None:
        """`task`, still in its deque, has just ended: count it out of the depth."""
        if task.priority:
            self._dead_priority += 1
        else:
            self._dead_main += 1

    def drain(self) -> list[TaskRecord[Any]]:
        """Remove and return every queued task, priority ones first."""
        tasks: list[TaskRecord[Any]] = []
        for queue in (self._priority, self._main):
            tasks += [t for t in queue if t.state is _QUEUED]
            queue.clear()
        self._dead_priority = self._dead_main = 0
        return tasks

    @property
    def main_depth(self) -> int:
        """Tasks waiting in the main queue."""
        return len(self._main) - self._dead_main

    @property
    def priority_depth(self) -> int:
        """Tasks waiting in the priority queue."""
        return len(self._priority) - self._dead_priority
