"""The two task queues (priority and main) behind one wake-up channel.

Every queued task puts one token on a channel (a `queue.SimpleQueue` for threads, an
`asyncio.Queue` on an event loop); a worker takes a token, then pops the priority queue first
and the main queue second. Pops and appends are single deque operations, so the hot path takes
no Python-level lock. A token whose task was removed (cancelled, or drained by `kill()`) finds
both queues empty and is simply skipped. Control messages travel on the same channel, behind
the tasks already queued.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final, Protocol

from tasker._task import TaskRecord

__all__ = ["EXIT", "TASK", "Channel", "TaskQueue"]

EXIT: Final = object()
"""Control token: the worker that takes it exits."""

TASK: Final = None
"""The token of a queued task."""


class Channel(Protocol):
    """Where tokens go: any FIFO with a non-blocking put."""

    def put_nowait(self, item: object, /) -> None:
        """Add a token without blocking."""


class TaskQueue:
    """Priority and main FIFO queues; retried tasks re-enter at the front of their queue."""

    __slots__ = ("_main", "_priority", "channel")

    def __init__(self, channel: Channel) -> None:
        self._priority: deque[TaskRecord[Any]] = deque()
        self._main: deque[TaskRecord[Any]] = deque()
        self.channel = channel

    def put(self, task: TaskRecord[Any]) -> None:
        """Queue `task` at the back of its queue."""
        (self._priority if task.priority else self._main).append(task)
        self.channel.put_nowait(TASK)

    def put_front(self, task: TaskRecord[Any]) -> None:
        """Queue `task` at the front of its queue (a retry keeps its turn)."""
        (self._priority if task.priority else self._main).appendleft(task)
        self.channel.put_nowait(TASK)

    def send(self, token: object, count: int = 1) -> None:
        """Send a control token to `count` workers, behind every task already queued."""
        for _ in range(count):
            self.channel.put_nowait(token)

    def take(self) -> TaskRecord[Any] | None:
        """Pop the next task for a `TASK` token: priority first; `None` if it was removed."""
        priority = self._priority
        if priority:  # tested first: raising IndexError for every normal task costs more
            try:
                return priority.popleft()
            except IndexError:  # another worker took the last one meanwhile
                pass
        try:
            return self._main.popleft()
        except IndexError:
            return None

    def remove(self, task: TaskRecord[Any]) -> bool:
        """Take `task` out of its queue; `False` if a worker (or `drain`) already took it."""
        try:
            (self._priority if task.priority else self._main).remove(task)
        except ValueError:
            return False
        return True

    def drain(self) -> list[TaskRecord[Any]]:
        """Remove and return every queued task, priority ones first."""
        tasks: list[TaskRecord[Any]] = []
        for queue in (self._priority, self._main):
            while True:
                try:
                    tasks.append(queue.popleft())
                except IndexError:
                    break
        return tasks

    @property
    def main_depth(self) -> int:
        """Tasks waiting in the main queue."""
        return len(self._main)

    @property
    def priority_depth(self) -> int:
        """Tasks waiting in the priority queue."""
        return len(self._priority)
