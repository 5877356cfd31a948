"""Drive the thread and the asyncio manager through one async interface.

Shared behaviour tests are written once, as coroutines, against `Driver`/`Managed`; the thread
driver runs blocking calls in helper threads (`asyncio.to_thread`, `wrap_future`) so the test's
own loop stays free. Tasks are written as plain functions of the resource; `driver.task`
adapts them (the asyncio driver wraps them in a coroutine), and `driver.hold` makes a task that
blocks until a gate opens, in the executor's own way of blocking.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

import pytest

from tasker import AsyncTaskManager, KillReport, TaskManager, TaskManagerBuilder
from tasker.metrics import TaskMetrics
from tasker.stats import ManagerState, TaskStats

R = TypeVar("R")
T = TypeVar("T")

EXECUTORS = ["thread", "asyncio"]


class Gate:
    """Something a held task waits on; `open()` releases it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.thread_event = threading.Event()
        self.loop_event = asyncio.Event()

    def open(self) -> None:
        self.thread_event.set()
        self.loop_event.set()


class Managed(Generic[R]):
    """A running manager of either kind, seen through coroutines."""

    def __init__(self, manager: TaskManager[R] | AsyncTaskManager[R]) -> None:
        self.manager = manager

    def submit(self, fn: Callable[..., Any], *args: Any, **options: Any) -> asyncio.Future[Any]:
        if isinstance(self.manager, TaskManager):
            return asyncio.wrap_future(self.manager.submit(fn, *args, **options))
        return self.manager.submit(fn, *args, **options)

    async def queue_task(self, fn: Callable[[R], Any]) -> Any:
        return await self.submit(fn)

    async def run_task(self, fn: Callable[[R], Any], **options: Any) -> Any:
        if isinstance(self.manager, TaskManager):
            manager = self.manager
            return await asyncio.to_thread(lambda: manager.run_task(fn, **options))
        return await self.manager.run_task(fn, **options)

    async def stop(self, timeout: float | None = None) -> bool:
        if isinstance(self.manager, TaskManager):
            return await asyncio.to_thread(self.manager.stop, timeout)
        return await self.manager.stop(timeout)

    async def kill(self) -> KillReport:
        if isinstance(self.manager, TaskManager):
            return self.manager.kill()
        return await self.manager.kill()

    async def join(self, timeout: float | None = 10) -> bool:
        if isinstance(self.manager, TaskManager):
            return await asyncio.to_thread(self.manager.join, timeout)
        return await self.manager.join(timeout)

    def stats(self) -> TaskStats:
        return self.manager.stats()

    def metrics(self) -> TaskMetrics:
        return self.manager.metrics()

    @property
    def state(self) -> ManagerState:
        return self.manager.state


class Driver:
    """Builds managers of one executor kind and adapts tasks to it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def build(self, builder: TaskManagerBuilder[R]) -> Managed[R]:
        if self.kind == "thread":
            return Managed(await asyncio.to_thread(builder.build))
        return Managed(await builder.with_executor("asyncio").build())

    def task(self, body: Callable[[R], T]) -> Callable[[R], Any]:
        """The task `body(resource)` in this executor's style."""
        if self.kind == "thread":
            return body

        async def run(resource: R) -> T:
            return body(resource)

        return run

    def hold(
        self, gate: Gate, started: asyncio.Event | None = None, result: object = None
    ) -> Callable[[Any], Any]:
        """A task that (optionally) signals `started`, then blocks until `gate` opens."""
        loop = asyncio.get_running_loop()
        if self.kind == "thread":

            def blocking(_: Any) -> object:
                if started is not None:
                    loop.call_soon_threadsafe(started.set)
                assert gate.thread_event.wait(10)
                return result

            return blocking

        async def waiting(_: Any) -> object:
            if started is not None:
                started.set()
            await asyncio.wait_for(gate.loop_event.wait(), 10)
            return result

        return waiting

    def gate(self) -> Gate:
        return Gate(self.kind)


def each_executor(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    """Run an async test `test(driver, **params)` once per executor, on a fresh event loop."""
    import inspect

    params = [p for name, p in inspect.signature(test).parameters.items() if name != "driver"]

    def run(executor: str, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(Driver(executor), **kwargs), 30))

    run.__name__ = test.__name__
    run.__qualname__ = test.__qualname__
    run.__doc__ = test.__doc__
    run.__module__ = test.__module__
    executor_param = inspect.Parameter(
        "executor", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str
    )
    run.__signature__ = inspect.Signature([executor_param, *params])  # type: ignore[attr-defined]
    marked: Callable[..., None] = pytest.mark.parametrize("executor", EXECUTORS)(run)
    return marked


async def settle_all(*futures: Awaitable[Any]) -> list[Any]:
    """Await every future, returning results or exceptions."""
    return list(await asyncio.gather(*futures, return_exceptions=True))
