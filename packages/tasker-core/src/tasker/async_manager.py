"""`AsyncTaskManager`: the same manager for coroutine tasks, on an asyncio event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple

from tasker import _validate as validate
from tasker._admission import Admission
from tasker._asyncio import AsyncRuntime
from tasker._facade import ManagerBase
from tasker.errors import QueueFullError
from tasker.stats import KillReport

if TYPE_CHECKING:
    from tasker.builder import AsyncTaskManagerBuilder

__all__ = ["AsyncTaskManager"]

R = TypeVar("R")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class AsyncTaskManager(ManagerBase[R]):
    """Runs coroutine tasks `async def fn(resource)` on asyncio workers that each own a resource.

    The semantics are the thread manager's: priority queue, health checks, retries and worker
    replacement, at-most-once tasks, `run_task` with a resource pool, scaling, metrics and
    logging. Differences follow from asyncio: `kill()` and timeouts cancel running tasks for
    real (`CancelledError` inside them), and cancelling a caller's `await` cancels that task.
    Use it from the event loop it was built on.

    ```python
    async with AsyncTaskManager.builder().with_resource(open_session, close).build() as m:
        body = await m.queue_task(lambda session: session.get("/health"))
    ```
    """

    __slots__ = ()
    _runtime: AsyncRuntime

    @staticmethod
    def builder() -> AsyncTaskManagerBuilder[None]:
        """Start configuring an async manager (the asyncio executor is preselected)."""
        from tasker.builder import AsyncTaskManagerBuilder  # noqa: PLC0415 - import cycle

        return AsyncTaskManagerBuilder()

    def submit(
        self,
        fn: Callable[[R, *Ts], Awaitable[T]],
        /,
        *args: *Ts,
        priority: bool = False,
        once: bool = False,
        timeout: float | None = None,
    ) -> asyncio.Future[T]:
        """Queue `fn(resource, *args)` and return an awaitable future for its outcome.

        Extra positional `args` follow the resource: `submit(fetch, url)` runs
        `fetch(resource, url)`, with no `lambda` or `partial` to allocate.
        Cancelling the future cancels the task: a queued one leaves its queue, a running one
        gets `CancelledError` inside while its worker carries on. `timeout` (seconds, default
        the builder's `with_timeout`) cancels an attempt that runs longer; the caller then
        gets `TimeoutError`.

        `submit` is synchronous and never waits: when the queue is full (`with_queue_limit`) it
        raises `QueueFullError`, whose message says so; `await put(...)` (and `queue_task*`) wait
        for room instead, with the per-call choice of `put(block=...)`.

        Raises:
            ManagerClosedError: the manager was stopped or killed.
            ManagerBrokenError: no worker could be kept alive.
            QueueFullError: the queue is full.
        """
        self._runtime.check_loop()
        try:
            return self._core.submit(fn, args, priority, once, timeout)  # type: ignore[return-value]
        except QueueFullError as error:  # say where the waiting path is
            raise QueueFullError(f"{error}; `await put(...)` waits for room") from None

    async def put(
        self,
        fn: Callable[[R, *Ts], Awaitable[T]],
        /,
        *args: *Ts,
        priority: bool = False,
        once: bool = False,
        timeout: float | None = None,
        block: bool | float = True,
    ) -> asyncio.Future[T]:
        """Like `submit`, but when the queue is full, wait for room first (as `asyncio.Queue.put`).

        Returns the task's future once the task is queued: `await (await m.put(fn))` gives
        its result.

        Args:
            fn: the task; it receives the worker's resource, then `args`.
            *args: more positional arguments for `fn`.
            priority: queue it ahead of every normal task; it also gets room before waiting
                normal tasks.
            once: never run it twice.
            timeout: seconds an attempt may run (default: the builder's `with_timeout`).
            block: `True` waits for room as long as it takes, `False` raises `QueueFullError`
                at once (as `submit`), a number of seconds waits that long at most.

        Raises:
            ManagerClosedError: the manager was stopped or killed (also while waiting).
            ManagerBrokenError: no worker could be kept alive.
            QueueFullError: no room within the time `block` allowed.
        """
        self._runtime.check_loop()
        patience = None if block is True else validate.block(block)
        queued = self._core.submit(fn, args, priority, once, timeout, patience)
        if isinstance(queued, Admission):  # the queue is full: wait for room
            queued = await self._runtime.wait_for_room(self._core, queued)
        return queued  # type: ignore[return-value]

    async def queue_task(self, fn: Callable[[R], Awaitable[T]]) -> T:
        """Queue `fn(resource)` and return its result (or raise its exception).

        With a queue limit, it first awaits room in the queue.
        """
        return await (await self.put(fn))

    async def queue_task_with_priority(self, fn: Callable[[R], Awaitable[T]]) -> T:
        """Like `queue_task`, ahead of every normal task."""
        return await (await self.put(fn, priority=True))

    async def queue_task_once(self, fn: Callable[[R], Awaitable[T]]) -> T:
        """Like `queue_task`, but never run twice: an unhealthy failure is raised, not retried."""
        return await (await self.put(fn, once=True))

    async def queue_task_with_priority_once(self, fn: Callable[[R], Awaitable[T]]) -> T:
        """Priority and at-most-once together."""
        return await (await self.put(fn, priority=True, once=True))

    async def run_task(self, fn: Callable[[R], Awaitable[T]], *, once: bool = False) -> T:
        """Run `fn(resource)` now, in the calling task, on a pooled or temporary resource."""
        self._runtime.check_loop()
        result: T = await self._runtime.run_task(self._core, fn, once=once)
        return result

    async def stop(self, timeout: float | None = None) -> bool:
        """Stop gracefully: refuse new work, finish every queued task, destroy every resource.

        Returns `True` once every worker has exited, `False` if `timeout` passed first (the
        shutdown goes on). From inside one of this manager's tasks it only starts the shutdown.
        """
        timeout = validate.timeout("timeout", timeout)
        core = self._core
        core.shutdown.begin_stop()
        if core.killed or self._in_own_task():
            return await self._runtime.join(0)
        return await self._runtime.join(timeout)

    async def kill(self) -> KillReport:
        """Stop now: cancel queued tasks and cancel running ones for real (no waiting)."""
        return self._core.shutdown.kill()

    async def join(self, timeout: float | None = None) -> bool:
        """Wait for a stop or kill to finish; `True` once every worker has exited."""
        timeout = validate.timeout("timeout", timeout)
        return await self._runtime.join(timeout)

    def _in_own_task(self) -> bool:
        current = asyncio.current_task()
        return any(worker.handle is current for worker in self._core.workers)

    async def __aenter__(self) -> AsyncTaskManager[R]:
        self._core.shutdown.check_open("enter")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
