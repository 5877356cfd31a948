"""Executors: what a worker runs on.

The manager's decisions (queues, retries, health, scaling, metrics) do not depend on the
executor; an executor only starts the workers' loops. The thread executor runs each worker on
its own OS thread, which suits blocking resources (database drivers, SDK clients); the asyncio
executor runs each worker as an asyncio task, for coroutine tasks (async HTTP clients, async
database drivers).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "AsyncioExecutor",
    "Executor",
    "ThreadExecutor",
    "WorkerHandle",
]


@runtime_checkable
class WorkerHandle(Protocol):
    """**Protocol**: a started worker, as the manager sees it."""

    def join(self, timeout: float | None = None) -> None:
        """Wait until the worker's loop has returned, or `timeout` seconds have passed."""

    def is_alive(self) -> bool:
        """Whether the worker's loop is still running."""
        ...


@runtime_checkable
class Executor(Protocol):
    """**Protocol**: starts worker loops.

    `kind` says which manager the executor serves: `"thread"` executors run `target()` (a
    blocking loop) concurrently and return a joinable handle; `"asyncio"` executors schedule
    the coroutine `target()` returns on the running loop and return its `asyncio.Task`.
    """

    @property
    def name(self) -> str:
        """The executor's registered name."""
        ...

    @property
    def kind(self) -> Literal["thread", "asyncio"]:
        """Whether workers are threads (blocking tasks) or asyncio tasks (coroutine tasks)."""
        ...

    def start_worker(self, target: Callable[[], Any], *, name: str) -> Any:
        """Start running `target` and return a handle to wait on it."""
        ...


class ThreadExecutor:
    """Runs every worker on its own daemon thread, named after the manager and the worker."""

    __slots__ = ()

    @property
    def name(self) -> str:
        """`"thread"`."""
        return "thread"

    @property
    def kind(self) -> Literal["thread"]:
        """`"thread"`."""
        return "thread"

    def start_worker(self, target: Callable[[], Any], *, name: str) -> WorkerHandle:
        """Start a daemon thread running `target`."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def __repr__(self) -> str:
        return "ThreadExecutor()"


class AsyncioExecutor:
    """Runs every worker as an asyncio task on the running event loop."""

    __slots__ = ()

    @property
    def name(self) -> str:
        """`"asyncio"`."""
        return "asyncio"

    @property
    def kind(self) -> Literal["asyncio"]:
        """`"asyncio"`."""
        return "asyncio"

    def start_worker(
        self, target: Callable[[], Coroutine[Any, Any, Any]], *, name: str
    ) -> asyncio.Task[Any]:
        """Schedule the coroutine `target()` returns as a task of the running loop."""
        return asyncio.get_running_loop().create_task(target(), name=name)

    def __repr__(self) -> str:
        return "AsyncioExecutor()"
