"""Executors: where a worker's resource lives and how a task is called on it.

The manager's decisions (queues, retries, health, scaling, metrics) do not depend on the
executor. An executor starts the workers' loops (`start_worker`) and, for each worker, makes a
**place** (`place`): the thing that creates the worker's resource, calls tasks on it, interrupts
an attempt and destroys the resource. The built-in executors keep the resource in this process:
the thread executor runs each worker on its own OS thread, which suits blocking resources
(database drivers, SDK clients); the asyncio executor runs each worker as an asyncio task, for
coroutine tasks. An executor whose places live elsewhere (another process, another machine)
implements the same protocol; the engine never learns where a worker runs.

A place reports that it died under a task by raising
[`WorkerCrashedError`][tasker.errors.WorkerCrashedError] from `call`: the engine then replaces
the worker and retries the task, as after an unhealthy failure.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from tasker._task import call_in_scope, call_in_task

if TYPE_CHECKING:
    from tasker._task import TaskRecord

__all__ = [
    "AsyncPlace",
    "AsyncioExecutor",
    "Executor",
    "LocalAsyncPlace",
    "LocalPlace",
    "Place",
    "ThreadExecutor",
    "WorkerHandle",
    "run_here",
]


@runtime_checkable
class WorkerHandle(Protocol):
    """**Protocol**: a started worker, as the manager sees it."""

    def join(self, timeout: float | None = None) -> None:
        """Wait until the worker's loop has returned, or `timeout` seconds have passed."""

    def is_alive(self) -> bool:
        """Whether the worker's loop is still running."""
        ...


class Place(Protocol):
    """**Protocol**: where one worker's resource lives (thread managers).

    The worker's thread calls `create` once, then `call` for each task, then `destroy` once;
    `interrupt` comes from another thread (a timeout, `kill()`) while `call` runs.

    A place whose class sets `sends_ahead = True` is called as `call(task, claim)`: once the
    task is on its way it may call `claim()` to take the worker's next task (`None` if none is
    queued) and send it ahead; that task is the next call's, unless the place is destroyed
    first (the worker then queues it again, unstarted).
    """

    @property
    def resource(self) -> Any:
        """The resource if it lives in this process (`current_task().resource`), else `None`."""
        ...

    def create(self) -> None:
        """Run `on_create` where the resource lives; raise what it raised."""

    def call(self, task: TaskRecord[Any]) -> Any:
        """Run `task.fn(resource, *task.args)`; return its result or raise its exception.

        Raise `WorkerCrashedError` if the place died under the task.
        """
        ...

    def interrupt(self) -> None:
        """Stop the running attempt now if the place can (it may tear the place down)."""

    def destroy(self) -> None:
        """Run `on_destroy` where the resource lives and release the place; raise its error."""


class AsyncPlace(Protocol):
    """**Protocol**: a `Place` for asyncio managers: `create`, `call` and `destroy` are awaited.

    When an attempt is cut short (its timeout, `kill()`, its caller cancelling it), `call` is
    cancelled: a place whose resource lives elsewhere stops the attempt there (or gives the
    resource up), and the worker is replaced, its place destroyed and a new one created.
    """

    @property
    def resource(self) -> Any:
        """The resource if it lives in this process, else `None`."""
        ...

    async def create(self) -> None:
        """Run `on_create` where the resource lives."""

    async def call(self, task: TaskRecord[Any]) -> Any:
        """Run the task; raise `WorkerCrashedError` if the place died under it."""
        ...

    def interrupt(self) -> None:
        """Stop the running attempt now if the place can."""

    async def destroy(self) -> None:
        """Run `on_destroy` where the resource lives and release the place."""


@runtime_checkable
class Executor(Protocol):
    """**Protocol**: starts worker loops and makes each worker's place.

    `kind` says which manager the executor serves: `"thread"` executors run `target()` (a
    blocking loop) concurrently and return a joinable handle, and make `Place`s; `"asyncio"`
    executors schedule the coroutine `target()` returns on the running loop and return its
    `asyncio.Task`, and make `AsyncPlace`s. An executor without a `place` method keeps every
    resource in this process, as the built-in ones do. A thread executor that can serve async
    managers too has a `for_asyncio()` method returning its asyncio form: an
    `AsyncTaskManager` builder given it (or its name) uses that.

    An executor whose places run tasks elsewhere may also define
    `prepare_task(fn, args) -> tuple`: `submit` calls it in the submitter, before the task is
    queued, and the task record keeps what it returns as its `args` (the task serialized once,
    say), which its places receive. Raising there (a `TypeError` naming what cannot cross)
    refuses the task at once. Executors without it cost `submit` nothing.
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


def run_here(task: TaskRecord[Any], resource: Any) -> Any:
    """Run `task` on `resource` in this thread: in its caller's context, as `current_task()`.

    What an in-process `Place.call` does; a place in another process runs `task.fn(resource,
    *task.args)` there instead (the context and `current_task()` do not cross).
    """
    if task._core.observers.task_attempt_context:
        return task.context.run(call_in_scope, task, resource, task.worker_id)
    return task.context.run(call_in_task, task, resource)


def make_place(
    executor: object,
    on_create: Callable[[], Any],
    on_destroy: Callable[[Any], object] | None,
    local: Callable[[Callable[[], Any], Callable[[Any], object] | None], Any],
) -> Any:
    """The executor's place for a new resource, or `local(...)` if it does not make places."""
    make = getattr(executor, "place", None)
    return local(on_create, on_destroy) if make is None else make(on_create, on_destroy)


class _LocalHooks:
    """The hooks and the resource of an in-process place."""

    __slots__ = ("_on_create", "_on_destroy", "resource")

    def __init__(
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> None:
        self._on_create = on_create
        self._on_destroy = on_destroy
        self.resource: Any = None


class LocalPlace(_LocalHooks):
    """A resource held in this process, called in the worker's own thread."""

    __slots__ = ()

    def create(self) -> None:
        """Call `on_create()` and keep its resource."""
        self.resource = self._on_create()

    def call(self, task: TaskRecord[Any]) -> Any:
        """Run the task right here (`run_here`, written out: this is every thread task's path)."""
        if task._core.observers.task_attempt_context:
            return task.context.run(call_in_scope, task, self.resource, task.worker_id)
        return task.context.run(call_in_task, task, self.resource)

    def interrupt(self) -> None:
        """Threads cannot be interrupted: tasks see `current_task().cancelled` instead."""

    def destroy(self) -> None:
        """Call `on_destroy(resource)` once."""
        resource, self.resource = self.resource, None
        if self._on_destroy is not None:
            self._on_destroy(resource)


class LocalAsyncPlace(_LocalHooks):
    """A resource held on the event loop; plain or `async` hooks."""

    __slots__ = ()

    async def create(self) -> None:
        """Call (and await, if need be) `on_create()`."""
        self.resource = await _maybe_await(self._on_create())

    async def call(self, task: TaskRecord[Any]) -> Any:
        """Run the task on the loop (the asyncio runtime runs local tasks inline instead)."""
        from tasker._asyncio import _run_in  # noqa: PLC0415 - no import cycle

        return await _run_in(task, self.resource)

    def interrupt(self) -> None:
        """The runtime cancels local attempts itself."""

    async def destroy(self) -> None:
        """Call (and await) `on_destroy(resource)` once."""
        resource, self.resource = self.resource, None
        if self._on_destroy is not None:
            await _maybe_await(self._on_destroy(resource))


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


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

    def place(
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> LocalPlace:
        """Keep the resource in the worker's thread."""
        return LocalPlace(on_create, on_destroy)

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

    def place(
        self,
        on_create: Callable[[], Any | Awaitable[Any]],
        on_destroy: Callable[[Any], object] | None,
    ) -> LocalAsyncPlace:
        """Keep the resource on the event loop."""
        return LocalAsyncPlace(on_create, on_destroy)

    def __repr__(self) -> str:
        return "AsyncioExecutor()"
