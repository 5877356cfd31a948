"""`TaskManager`: the public face of a worker pool whose workers own long-lived resources."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, TypeVarTuple

from tasker import _validate as validate
from tasker._admission import Admission
from tasker._facade import ManagerBase
from tasker._threads import ThreadRuntime, thread_owner
from tasker.stats import KillReport

if TYPE_CHECKING:
    from tasker.builder import TaskManagerBuilder

__all__ = ["TaskManager"]

R = TypeVar("R")
T = TypeVar("T")
P = ParamSpec("P")
Ts = TypeVarTuple("Ts")


class TaskManager(ManagerBase[R]):
    """Runs tasks `fn(resource)` on a pool of workers that each own a resource of type `R`.

    Build one with [`TaskManager.builder()`][tasker.TaskManager.builder]. Every method is
    thread-safe. A task submitted to the manager ends in exactly one outcome: its result, its
    exception (or `RetriesExhaustedError`), or `CancelledError`.

    Use it as a context manager to stop it gracefully on exit:

    ```python
    with TaskManager.builder().with_resource(connect, close).build() as manager:
        rows = manager.queue_task(lambda conn: conn.execute("select 1"))
    ```
    """

    __slots__ = ()
    _runtime: ThreadRuntime

    @staticmethod
    def builder() -> TaskManagerBuilder[None]:
        """Start configuring a manager; see [`TaskManagerBuilder`][tasker.TaskManagerBuilder]."""
        from tasker.builder import TaskManagerBuilder  # noqa: PLC0415 - avoid an import cycle

        return TaskManagerBuilder()

    # ---------------------------------------------------------------- queueing

    def submit(
        self,
        fn: Callable[[R, *Ts], T],
        /,
        *args: *Ts,
        priority: bool = False,
        once: bool = False,
        timeout: float | None = None,
        block: bool | float = True,
    ) -> Future[T]:
        """Queue `fn(resource, *args)` and return a future for its outcome.

        Args:
            fn: the task; it receives the worker's resource, then `args`.
            *args: more positional arguments for `fn`: `submit(fetch, url)` runs
                `fetch(resource, url)`, with no `lambda` or `partial` to allocate.
            priority: queue it ahead of every normal task.
            once: never run it twice, even when its worker turns unhealthy.
            timeout: seconds an attempt may run (default: the builder's `with_timeout`). When
                it runs longer, the caller gets `TimeoutError` at once and the task sees
                `current_task().cancelled`; a thread cannot be interrupted, so its worker
                carries on once the task returns.
            block: what to do when the queue is full (`with_queue_limit`): `True` waits for
                room, `False` raises `QueueFullError` at once, a number of seconds waits that
                long at most, then raises it. Without a limit the queue is never full.

        Raises:
            ManagerClosedError: the manager was stopped or killed (also while waiting for room).
            ManagerBrokenError: no worker could be kept alive (see `with_backoff`).
            QueueFullError: the queue is full and `block` did not let the call wait (long
                enough) for room.
        """
        patience = None if block is True else validate.block(block)
        queued = self._core.submit(fn, args, priority, once, timeout, patience)
        if queued.__class__ is Admission:  # the queue is full: wait for room
            queued = self._runtime.wait_for_room(self._core, queued)
        return queued  # type: ignore[return-value]

    def queue_task(self, fn: Callable[[R], T]) -> T:
        """Queue `fn(resource)`, wait for it, and return its result or raise its exception.

        With a queue limit, it first waits for room in the queue.

        An unhealthy failure is retried on a fresh worker up to `max_retries` times, after which
        `RetriesExhaustedError` is raised. Interrupting the wait cancels the task if it has not
        started yet.
        """
        return self._wait_for(fn, priority=False, once=False)

    def queue_task_with_priority(self, fn: Callable[[R], T]) -> T:
        """Like `queue_task`, ahead of every normal task."""
        return self._wait_for(fn, priority=True, once=False)

    def queue_task_once(self, fn: Callable[[R], T]) -> T:
        """Like `queue_task`, but never run twice: an unhealthy failure is raised, not retried."""
        return self._wait_for(fn, priority=False, once=True)

    def queue_task_with_priority_once(self, fn: Callable[[R], T]) -> T:
        """Priority and at-most-once together."""
        return self._wait_for(fn, priority=True, once=True)

    def _wait_for(self, fn: Callable[[R], T], *, priority: bool, once: bool) -> T:
        """Submit and wait, refusing a wait that could deadlock the manager's own worker."""
        core = self._core
        if thread_owner() is core:
            raise RuntimeError(
                f"queue_task* called from a task of manager {core.config.name!r} on its "
                "own worker would wait for a worker that may never free up (with one worker, "
                "never): use submit() and do not wait on it in the task, or run_task() to run "
                "it right here"
            )
        queued = core.submit(fn, (), priority, once, None, None)  # `submit`, with its defaults
        if queued.__class__ is Admission:
            queued = self._runtime.wait_for_room(core, queued)
        return _wait(queued)  # type: ignore[arg-type]

    def run_task(self, fn: Callable[[R], T], *, once: bool = False) -> T:
        """Run `fn(resource)` now, in the calling thread, bypassing the queues.

        The resource comes from the pool (`with_resource_pool`) or, when every pooled resource is
        busy, is created for this call and destroyed right after. Unhealthy failures are retried
        on a fresh resource like queued tasks.

        Raises:
            ResourceCreationError: `on_create` failed for the resource this call needed.
        """
        return self._runtime.run_task(self._core, fn, once=once)

    def as_executor(self) -> concurrent.futures.Executor:
        """A `concurrent.futures.Executor` view: `submit(fn, *args, **kwargs)`, `map`, `shutdown`.

        Functions run on the workers without receiving the resource; inside them
        `tasker.current_task().resource` gives it. `shutdown()` stops the manager.
        """
        return _ExecutorView(self)

    # ------------------------------------------------------------- observing

    # --------------------------------------------------------------- shutdown

    def stop(self, timeout: float | None = None) -> bool:
        """Stop gracefully: refuse new work, finish every queued task, destroy every resource.

        Returns `True` once every worker thread has exited and every resource is destroyed,
        `False` if `timeout` seconds passed first (the shutdown then goes on in the background;
        call `stop()` or `join()` again to wait more, or `kill()` to cut it short). Called from
        inside one of this manager's tasks or callbacks, it starts the shutdown and returns
        `False` without waiting (the calling task is part of what must finish). After `kill()`
        it does not wait either: use `join()`.
        """
        timeout = validate.timeout("timeout", timeout)
        core = self._core
        core.shutdown.begin_stop()
        if core.killed or thread_owner() is core:
            return self._runtime.join(0)
        return self._runtime.join(timeout)

    def kill(self) -> KillReport:
        """Stop now: refuse new work, cancel queued tasks, abandon running ones.

        Queued tasks' callers get `CancelledError`; so do the callers of running tasks,
        immediately. Running tasks see `current_task().cancelled` become `True`; when each
        returns, its worker destroys its resource and exits. Pooled resources are destroyed
        now. Returns at once, without waiting for running tasks; `join()` waits for them.
        """
        return self._core.shutdown.kill()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a stop or kill to finish; `True` once every worker has exited."""
        timeout = validate.timeout("timeout", timeout)
        return self._runtime.join(timeout)

    def __enter__(self) -> TaskManager[R]:
        self._core.shutdown.check_open("enter")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _wait(future: Future[T]) -> T:
    try:
        return future.result()
    except BaseException:
        if not future.done():  # the wait itself was interrupted, not the task
            future.cancel()
        raise


class _ExecutorView(concurrent.futures.Executor):
    """`concurrent.futures.Executor` over a manager (see `TaskManager.as_executor`)."""

    def __init__(self, manager: TaskManager[Any]) -> None:
        self._manager = manager

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._manager.submit(lambda _resource: fn(*args, **kwargs))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        core = self._manager._core
        if cancel_futures:
            core.shutdown.cancel_queued()
        if wait:
            self._manager.stop()
        else:
            core.shutdown.begin_stop()
