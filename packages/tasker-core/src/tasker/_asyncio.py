"""The asyncio runtime: each worker is an asyncio task on the manager's event loop.

Everything here is about coroutines and awaiting; every decision is the core's. Nothing blocks
the loop: waits are `await`s, the core's lock is only ever held for a few attribute updates.
Resource hooks may be plain functions or coroutine functions; plain ones run on the loop, so
they should be quick.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextlib import suppress
from functools import partial
from threading import get_ident
from typing import Any, Generic, TypeVar

from tasker._admission import Admission
from tasker._core import Core
from tasker._lifecycle import Step, Steps, drive, start_steps, supervise_steps, worker_steps
from tasker._run_task import run_task_steps
from tasker._task import _CURRENT, TaskRecord, new_async_task_future, not_awaitable
from tasker._worker import Worker
from tasker.executors import AsyncPlace, Executor, LocalAsyncPlace, make_place

__all__ = ["AsyncRuntime"]

R = TypeVar("R")
T = TypeVar("T")

_COROUTINE = types.CoroutineType
_STREAK = 32  # tasks a worker completes without suspending before it lets the loop run


async def _call_hook(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async hook and return its result."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class _Wakeup:
    """A parked worker's wake-up (see `tasker._parking`): released once, maybe before the wait."""

    __slots__ = ("_loop", "_released", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._released = False
        self._waiter: asyncio.Future[None] | None = None

    def release(self) -> None:
        """Wake the worker (on the loop's thread, as every call into the core)."""
        self._released = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def acquire(self, timeout: float | None) -> bool:
        """Wait until released, up to `timeout` seconds; whether it was (and take the release)."""
        if not self._released:
            self._waiter = waiter = self._loop.create_future()
            try:
                if timeout is None:
                    await waiter
                else:
                    with suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await waiter
            finally:
                self._waiter = None
        released = self._released
        self._released = False
        return released


class _Channel:
    """A token FIFO for one event loop: `asyncio.Queue` without the task accounting.

    `put_nowait` wakes the longest-waiting `get`; tokens are never lost, because a woken getter
    that gets cancelled passes its wake-up on to the next waiter.
    """

    __slots__ = ("_items", "_loop", "_waiters")

    def __init__(self) -> None:
        self._items: deque[object] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop = asyncio.get_running_loop()

    def put_nowait(self, item: object) -> None:
        """Add a token and wake one waiting `get`."""
        self._items.append(item)
        if self._waiters:
            self._wake_one()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def empty(self) -> bool:
        """Whether no token is waiting."""
        return not self._items

    def get_nowait(self) -> object:
        """Pop a token; raise `asyncio.QueueEmpty` if there is none."""
        try:
            return self._items.popleft()
        except IndexError:
            raise asyncio.QueueEmpty from None

    async def get(self) -> object:
        """Wait for a token."""
        items = self._items
        while not items:
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and items:
                    self._wake_one()  # woken, then cancelled: pass the wake-up on
                elif not waiter.done() or waiter.cancelled():
                    with suppress(ValueError):  # a timed-out wait leaves nothing behind
                        self._waiters.remove(waiter)
                raise
        return items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class _Waiter:
    """A coroutine waiting for room in a full queue awaits a future the core resolves once."""

    __slots__ = ("_future",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    async def wait(self, timeout: float | None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._future
        except TimeoutError:
            return False
        return True


class _InContext:
    """Await a coroutine while running each of its steps inside `context`.

    This gives the task the submitter's `contextvars` without creating an asyncio task per
    call: the worker's own task drives the coroutine, so a task that never suspends costs one
    `Context.run` call, and cancelling the worker's task cancels the coroutine.
    """

    __slots__ = ("_context", "_coro", "_first")

    def __init__(
        self, coro: Coroutine[Any, Any, Any], context: contextvars.Context, first: Any
    ) -> None:
        self._coro = coro
        self._context = context
        self._first = first  # what the coroutine yielded on its first step

    def __await__(self) -> Generator[Any, Any, Any]:
        run = self._context.run
        send, throw = self._coro.send, self._coro.throw
        yielded = self._first
        while True:
            step: Callable[[Any], Any]
            try:
                arg = yield yielded
                step = send
            except BaseException as thrown:  # cancellation and the like go to the coroutine
                step, arg = throw, thrown
            try:
                yielded = run(step, arg)
            except StopIteration as done:
                return done.value


async def _run_scoped(task: TaskRecord[Any], resource: Any, worker_id: int | None) -> Any:
    """`_run_in` inside the plugins' attempt context managers, entered in the task's context."""
    context = task.context
    scope = context.run(task._core.observers.attempt_scope, task, worker_id)
    if scope is None:
        return await _run_in(task, resource)
    context.run(scope.enter)
    try:
        result = await _run_in(task, resource)
    except BaseException as error:
        context.run(scope.exit, error)
        raise
    context.run(scope.exit, None)
    return result


def _start(task: TaskRecord[Any], resource: Any) -> tuple[bool, Any]:
    """Run the task in its context up to its first suspension.

    Returns `(True, result)` when it finished (a coroutine that never suspended, or a plain
    function), else `(False, awaitable)` to await for the rest. Cheap tasks thus complete with
    no extra objects at all, and enter the task's context once.
    """
    return task.context.run(_first_step, task, resource)


def _first_step(task: TaskRecord[Any], resource: Any) -> tuple[bool, Any]:
    """`_start`, inside the task's context."""
    if _CURRENT.get() is not task:
        _CURRENT.set(task)
    args = task.args
    outcome = task.fn(resource, *args) if args else task.fn(resource)
    if type(outcome) is _COROUTINE:
        try:
            yielded = outcome.send(None)
        except StopIteration as done:
            return True, done.value
        return False, _InContext(outcome, task.context, yielded)
    if inspect.isawaitable(outcome):
        return False, outcome
    raise not_awaitable(task, outcome)


def _remote(worker: Worker) -> bool:
    """Whether the worker's place is remote: one whose attempt was cut short is replaced."""
    return worker.place.__class__ is not LocalAsyncPlace


async def _run_in(task: TaskRecord[Any], resource: Any) -> Any:
    """Run the task's function on `resource` in its context; await it if it is a coroutine."""
    done, outcome = _start(task, resource)
    return outcome if done else await outcome


class _Driven(Generic[T]):
    """A lifecycle driven by awaiting: `await` it once, or `run()` it as a task's coroutine."""

    __slots__ = ("_driver",)

    def __init__(self, driver: Generator[Any, Any, T]) -> None:
        self._driver = driver

    def __await__(self) -> Generator[Any, Any, T]:
        return self._driver

    async def run(self) -> T:
        """Drive the lifecycle to its end."""
        return await self


class AsyncRuntime:
    """Runs a core on asyncio tasks of the running event loop."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._core: Core[Any] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        # the primitives the core drives, of this runtime's kind (see `Runtime`)
        self.channel = _Channel()
        self.shutdown = asyncio.Event()
        self.killed_signal = asyncio.Event()
        self.terminated = asyncio.Event()
        self.wake = asyncio.Event()
        self.calls_done = asyncio.Event()
        self.new_record = partial(new_async_task_future, self._loop)
        """Asyncio tasks are `asyncio.Future`s of the manager's loop."""

    def check_loop(self) -> None:
        """Raise unless called on the event loop the manager was built on."""
        # asyncio's own loops note the thread running them, and only while they run: a cheaper
        # test than `get_running_loop()`, which makes a system call (other loops take that path)
        if getattr(self._loop, "_thread_id", None) == get_ident():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is self._loop:
            return
        raise RuntimeError(
            "an AsyncTaskManager is used from the event loop it was built on; from another "
            "thread, use asyncio.run_coroutine_threadsafe(manager.queue_task(fn), loop)"
        )

    # -------------------------------------------------------------- Runtime API

    def new_waiter(self) -> _Waiter:
        """A submission waiting for room awaits."""
        return _Waiter(self._loop)

    async def wait_for_room(self, core: Core[Any], queued: Admission) -> TaskRecord[Any]:
        """Await until the core admits or refuses a submission, or its patience runs out."""
        waiter = queued.waiter
        assert isinstance(waiter, _Waiter)
        try:
            woken = await waiter.wait(queued.patience)
        except BaseException:  # the caller was cancelled: nobody will take the future
            core.overload.interrupted(queued)
            raise
        return core.overload.admitted(queued) if woken else core.overload.gave_up(queued)

    def interrupt(self, task: TaskRecord[Any]) -> None:
        """Cancel the running attempt of `task`; its worker absorbs the cancellation."""
        assert self._core is not None
        for worker in self._core.workers:
            if worker.current is task and not worker.interrupted and not worker.parked:
                worker.interrupted = True
                if worker.place is not None:
                    worker.place.interrupt()  # a remote place stops the attempt where it runs
                worker.handle.cancel()

    def wait_killed(self, seconds: float) -> bool:
        """Not for asyncio tasks, which are cancelled for real."""
        raise TypeError(
            "current_task().sleep() is for thread tasks; asyncio tasks are cancelled for real: "
            "use `await asyncio.sleep(...)`"
        )

    # -------------------------------------------------------------- lifecycle

    async def start(self, core: Core[Any]) -> None:
        """Fill the pool, start the base workers and the supervisor; raise if any part fails."""
        self._core = core
        await self._drive(start_steps(core))

    async def join(self, timeout: float | None) -> bool:
        """Wait until every worker has exited and every resource is destroyed."""
        try:
            await asyncio.wait_for(self.terminated.wait(), timeout)
        except TimeoutError:
            return False
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not asyncio.current_task():
            await supervisor
        return True

    async def run_task(self, core: Core[R], fn: Callable[[R], Any], *, once: bool) -> Any:
        """Run `fn` now, in the calling task, on a pooled or temporary resource."""
        return await self._drive(run_task_steps(core, fn, once=once))

    def _drive(self, steps: Steps[T]) -> _Driven[T]:
        """Run a lifecycle in the awaiting task, performing each step by awaiting."""
        return _Driven(drive(steps, self._perform))

    def _perform(self, step: Step) -> Generator[Any, Any, Any]:
        awaitable: Awaitable[Any] = getattr(self, step.action)(*step.args)
        return (yield from awaitable.__await__())

    # the actions of the lifecycles (see `_lifecycle`), performed by awaiting

    async def create_resource(self) -> Any:
        """Call (and await, if need be) `on_create()`."""
        assert self._core is not None
        return await _call_hook(self._core.config.on_create)

    async def destroy_resource(self, resource: Any) -> None:
        """Call (and await) `on_destroy(resource)`, if there is one."""
        assert self._core is not None
        if (on_destroy := self._core.config.on_destroy) is not None:
            await _call_hook(on_destroy, resource)

    async def open_place(self) -> AsyncPlace:
        """Make a worker's place and create its resource there."""
        assert self._core is not None
        cfg = self._core.config
        place: AsyncPlace = make_place(
            self._executor, cfg.on_create, cfg.on_destroy, LocalAsyncPlace
        )
        await place.create()
        return place

    async def close_place(self, place: AsyncPlace) -> None:
        """Destroy the resource of a worker's place."""
        await place.destroy()

    async def call(self, task: TaskRecord[Any], resource: Any) -> Any:
        """Run a `run_task` call in the calling task."""
        assert self._core is not None
        if self._core.observers.task_attempt_context:
            return await _run_scoped(task, resource, None)
        return await _run_in(task, resource)

    async def pause(self, seconds: float) -> bool:
        """Wait up to `seconds` for the shutdown; whether it came."""
        try:
            await asyncio.wait_for(self.shutdown.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def start_worker(self, worker: Worker) -> asyncio.Future[BaseException | None]:
        """Start a worker's loop as an asyncio task."""
        core = self._core
        assert core is not None
        startup: asyncio.Future[BaseException | None] = self._loop.create_future()

        def report(error: BaseException | None) -> None:
            if not startup.done():
                startup.set_result(error)

        worker.handle = self._executor.start_worker(
            lambda: self._drive(worker_steps(core, worker, report)).run(),
            name=f"{core.config.name}-worker-{worker.worker_id}",
        )
        return startup

    async def started(self, startup: asyncio.Future[BaseException | None]) -> BaseException | None:
        """Wait until a new worker's first creation ended."""
        return await startup

    async def start_supervisor(self) -> None:
        """Start the supervisor task, which scales and, at the end, finishes."""
        core = self._core
        assert core is not None
        self._supervisor = self._loop.create_task(
            self._drive(supervise_steps(core)).run(), name=f"{core.config.name}-supervisor"
        )

    async def wait_wake(self) -> None:
        """Sleep until woken, a scaling interval at most."""
        assert self._core is not None
        with suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), self._core.config.policy.interval)
        self.wake.clear()

    async def join_workers(self, workers: list[Worker]) -> None:
        """Wait until every worker task has exited."""
        handles = [w.handle for w in workers if w.handle is not None]
        if handles:
            await asyncio.wait(handles)

    async def calls_finished(self) -> None:
        """Wait until no `run_task` call holds a resource."""
        await self.calls_done.wait()

    # ----------------------------------------------------------------- workers

    async def _parked(self, core: Core[Any], worker: Worker) -> TaskRecord[Any] | None:
        """Park the worker until a task is handed to it (see `tasker._parking`).

        `None` when a token is there to take, the worker was woken to take one, or an idle
        burst worker's wait ran out (`worker.leaving` set if the policy retires it).
        """
        if not worker.parked and not core.parking.park(worker):
            return None
        wakeup = worker.wakeup
        try:
            if not await wakeup.acquire(core.config.policy.interval if worker.burst else None):
                if core.parking.unpark(worker):  # nothing came for a scaling interval
                    worker.leaving = core.workforce.try_retire(worker)
                    return None
                await wakeup.acquire(None)  # woken just now: the release is there to take
        except BaseException:
            core.parking.leave(worker)
            raise
        return core.parking.woken(worker)

    async def serve(self, worker: Worker) -> bool:
        """Run tasks until told to leave (`False`) or the resource turns unhealthy (`True`).

        The common case, a token already waiting and a task with no timeout and no plugin
        scope that completes without suspending, runs without creating a single coroutine.
        Such tasks never give the loop a turn, so after `_STREAK` tasks in a row the worker
        yields once: a long backlog of quick tasks must not starve the rest of the program.
        """
        core = self._core
        assert core is not None
        worker.wakeup = _Wakeup(asyncio.get_running_loop())
        next_task = core.next_task
        channel = self.channel
        observers = core.observers
        streak = 0
        while True:
            try:
                token = channel.get_nowait()
            except asyncio.QueueEmpty:
                streak = 0
                # no attempt runs, so no interruption can come: a cancellation here is
                # the worker's own (`_receive_interruption` took any late one already)
                task = await self._parked(core, worker)
            else:
                task = next_task(worker, token)
            if task is None:  # told to leave, or its task was cancelled or drained meanwhile
                if worker.leaving:
                    return False
                continue
            start = core.attempt_started(task, worker)
            if (
                task.timeout is not None
                or observers.task_attempt_context
                or worker.place.__class__ is not LocalAsyncPlace
            ):
                replace = await self._run(core, worker, task, start, None)
            else:
                try:
                    done, outcome = _start(task, worker.resource)
                except BaseException as error:  # raised before its first suspension
                    replace = self._failed(core, worker, task, error, start)
                else:
                    if done:
                        core.attempt_succeeded(worker, task, outcome, start)
                        replace = False
                    else:
                        replace = await self._run(core, worker, task, start, outcome)
                    outcome = None
            task = None  # hold no settled task (nor its result) while waiting for the next
            if worker.interrupted:  # the attempt ended without our cancellation reaching it
                await self._receive_interruption(worker)
            if replace:
                return True
            if worker.burst and core.workforce.retiring and core.workforce.try_retire(worker):
                return False  # idle between two tasks: leave as the policy asks
            streak += 1
            if streak == _STREAK:  # whichever way the last tasks went, let the loop run
                streak = 0
                await asyncio.sleep(0)

    async def _run(
        self,
        core: Core[Any],
        worker: Worker,
        task: TaskRecord[Any],
        start: float,
        pending: Awaitable[Any] | None,
    ) -> bool:
        """Finish an attempt that suspended, or run one with a timeout or a plugin scope.

        `pending` is what a task that suspended still has to do. Returns `True` if the worker
        must be replaced.
        """
        deadline = None
        resource = worker.resource
        try:
            if pending is not None:
                result = await pending
            else:
                attempt = (
                    worker.place.call(task)
                    if worker.place.__class__ is not LocalAsyncPlace
                    else _run_scoped(task, resource, worker.worker_id)
                    if core.observers.task_attempt_context
                    else _run_in(task, resource)
                )
                if task.timeout is None:
                    result = await attempt
                else:
                    async with asyncio.timeout(task.timeout) as deadline:
                        result = await attempt
        except BaseException as error:
            if deadline is not None and deadline.expired():
                core.cancellation.attempt_expired(worker, task, start)
                return _remote(worker)
            return self._failed(core, worker, task, error, start)
        core.attempt_succeeded(worker, task, result, start)
        return False

    def _failed(
        self,
        core: Core[Any],
        worker: Worker,
        task: TaskRecord[Any],
        error: BaseException,
        start: float,
    ) -> bool:
        """An attempt raised: our interruption, a real cancellation of the worker, or a failure."""
        if isinstance(error, asyncio.CancelledError):
            if self._absorb(worker):
                core.cancellation.attempt_cancelled(worker, task)
                return _remote(worker)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise error  # the worker itself is being cancelled (the loop is closing)
            # else: the task raised CancelledError of its own accord: an ordinary failure
        return core.attempt_failed(worker, task, error, start)

    def _absorb(self, worker: Worker) -> bool:
        """A `CancelledError` reached the worker: `True` if it was our own interruption."""
        if not worker.interrupted:
            return False  # the worker itself is being cancelled: let it go
        worker.interrupted = False
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        return True

    async def _receive_interruption(self, worker: Worker) -> None:
        """Take an interruption whose attempt ended without it, before the next task starts.

        The attempt was cancelled (by its caller, or by itself) but returned or failed instead
        of receiving `CancelledError`: either it swallowed it, or it never suspended again, and
        the cancellation is still pending on the worker's task. Yielding once receives it here,
        where it hits no task.
        """
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._absorb(worker)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the worker itself is being cancelled too
            return
        self._absorb(worker)  # it had reached the attempt, which swallowed it
