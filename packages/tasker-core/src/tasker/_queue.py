"""The two task queues (priority and main) behind one wake-up channel.

Every queued task puts one token in a `SimpleQueue`; a worker takes a token, then pops the
priority queue first and the main queue second. Pops and appends are single deque operations,
so the hot path takes no Python-level lock. A token whose task was removed (cancelled, or
drained by `kill()`) finds both queues empty and is simply skipped. Control messages travel on
the same channel, behind the tasks already queued.
"""

from __future__ import annotations

from collections import deque
from queue import Empty, SimpleQueue
from typing import Any, Final

from tasker._task import TaskFuture

__all__ = ["EXIT", "TaskQueue"]

EXIT: Final = object()
"""Control token: the worker that takes it exits."""

_TASK: Final = None


class TaskQueue:
    """Priority and main FIFO queues; retried tasks re-enter at the front of their queue."""

    __slots__ = ("_main", "_priority", "_signal")

    def __init__(self) -> None:
        self._priority: deque[TaskFuture[Any]] = deque()
        self._main: deque[TaskFuture[Any]] = deque()
        self._signal: SimpleQueue[object] = SimpleQueue()

    def put(self, task: TaskFuture[Any]) -> None:
        """Queue `task` at the back of its queue."""
        (self._priority if task.priority else self._main).append(task)
        self._signal.put(_TASK)

    def put_front(self, task: TaskFuture[Any]) -> None:
        """Queue `task` at the front of its queue (a retry keeps its turn)."""
        (self._priority if task.priority else self._main).appendleft(task)
        self._signal.put(_TASK)

    def send(self, token: object, count: int = 1) -> None:
        """Send a control token to `count` workers, behind every task already queued."""
        for _ in range(count):
            self._signal.put(token)

    def get(self, timeout: float | None = None) -> TaskFuture[Any] | object | None:
        """Wait for the next task or control token.

        Returns a task, a control token, or `None` when a token found no task (it was removed)
        or when `timeout` expired.
        """
        try:
            token = self._signal.get(timeout=timeout)
        except Empty:
            return None
        if token is not _TASK:
            return token
        try:
            return self._priority.popleft()
        except IndexError:
            pass
        try:
            return self._main.popleft()
        except IndexError:
            return None

    def remove(self, task: TaskFuture[Any]) -> bool:
        """Take `task` out of its queue; `False` if a worker (or `drain`) already took it."""
        try:
            (self._priority if task.priority else self._main).remove(task)
        except ValueError:
            return False
        return True

    def drain(self) -> list[TaskFuture[Any]]:
        """Remove and return every queued task, priority ones first."""
        tasks: list[TaskFuture[Any]] = []
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
