"""The thread runtime: each worker is an OS thread; a supervisor thread scales and shuts down.

Everything here is about threads and blocking waits; every decision is the core's.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from tasker._core import Core
from tasker._queue import EXIT
from tasker._run_task import Call, Destroy, run_task_steps
from tasker._task import TaskRecord, new_task_future
from tasker._worker import Worker
from tasker.errors import ResourceCreationError
from tasker.executors import Executor, LocalPlace, Place, make_place, run_here

__all__ = ["ThreadRuntime", "thread_owner"]

R = TypeVar("R")
T = TypeVar("T")

_owner = threading.local()


def thread_owner() -> Core[Any] | None:
    """The manager core the calling thread works for (a worker or a supervisor), if any."""
    owner: Core[Any] | None = getattr(_owner, "core", None)
    return owner


class _Startup:
    """How a new worker's first `on_create` went, for `build()` to wait on."""

    __slots__ = ("_done", "error")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.error: BaseException | None = None

    def report(self, error: BaseException | None) -> None:
        self.error = error
        self._done.set()

    def wait(self) -> BaseException | None:
        self._done.wait()
        return self.error


class _Watch:
    """A running attempt's deadline entry; the worker clears `task` when the attempt ends.

    The deadline heap thus never keeps a settled task (and its result) alive.
    """

    __slots__ = ("attempt", "task")

    def __init__(self, task: TaskRecord[Any], attempt: int) -> None:
        self.task: TaskRecord[Any] | None = task
        self.attempt = attempt


class ThreadRuntime:
    """Runs a core on threads started by an `Executor` (the thread executor by default)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._core: Core[Any] | None = None
        self._supervisor: threading.Thread | None = None
        self._deadlines: list[tuple[float, int, _Watch]] = []
        self._deadline_lock = threading.Lock()
        self._seq = itertools.count()
        # the primitives the core drives, of this runtime's kind (see `Runtime`)
        self.channel: SimpleQueue[object] = SimpleQueue()
        self.shutdown = threading.Event()
        self.killed_signal = threading.Event()
        self.terminated = threading.Event()
        self.wake = threading.Event()
        self.calls_done = threading.Event()

    # -------------------------------------------------------------- Runtime API

    new_record = staticmethod(new_task_future)
    """Thread tasks are `concurrent.futures.Future`s."""

    def spawn(self, core: Core[Any], worker: Worker, startup: _Startup | None = None) -> None:
        """Start a worker thread."""
        report = startup if startup is not None else _Startup()
        worker.handle = self._executor.start_worker(
            lambda: self._worker_main(core, worker, report),
            name=f"{core.config.name}-worker-{worker.worker_id}",
        )

    def interrupt(self, task: TaskRecord[Any]) -> None:
        """Ask the place running `task` to stop it.

        A local place cannot: the task sees `current_task().cancelled` instead.
        """
        assert self._core is not None
        for worker in list(self._core.workers):
            place = worker.place
            if worker.current is task and place is not None:
                place.interrupt()

    def wait_killed(self, seconds: float) -> bool:
        """Sleep up to `seconds`; `True` as soon as the manager is killed."""
        assert self._core is not None
        return self.killed_signal.wait(seconds)

    # -------------------------------------------------------------- lifecycle

    def start(self, core: Core[Any]) -> None:
        """Fill the pool, start the base workers and the supervisor; raise if any part fails."""
        self._core = core
        cfg = core.config
        try:
            self._fill_pool(core)
        except ResourceCreationError:
            self._destroy_all(core, core.pool.close())
            raise
        startups = []
        for _ in range(cfg.workers):
            startup = _Startup()
            self.spawn(core, core.new_worker(burst=False), startup)
            startups.append(startup)
        failures = [error for s in startups if (error := s.wait()) is not None]
        if failures:
            self._finish(core)
            raise ResourceCreationError(
                f"on_create failed for {len(failures)} of {cfg.workers} base workers while "
                f"building manager {cfg.name!r}: {failures[0]!r}"
            ) from failures[0]
        core.opened()
        self._supervisor = threading.Thread(
            target=self._supervise, args=(core,), name=f"{cfg.name}-supervisor", daemon=True
        )
        self._supervisor.start()

    def join(self, timeout: float | None) -> bool:
        """Wait until every worker has exited and every resource is destroyed."""
        core = self._core
        assert core is not None
        if not self.terminated.wait(timeout):
            return False
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout)
        return True

    def _fill_pool(self, core: Core[Any]) -> None:
        created = []
        try:
            for _ in range(core.pool.capacity):
                created.append(self._borrow(core))
        finally:
            for resource, pooled in created:
                self._give_back(core, resource, pooled, healthy=True)

    def _supervise(self, core: Core[Any]) -> None:
        _owner.core = core
        interval = core.config.policy.interval
        wake = self.wake
        while True:
            wake.wait(self._expire_deadlines(core, interval))
            wake.clear()
            grow = core.supervisor_tick()
            if grow is None:
                break
            for _ in range(grow):
                self.spawn(core, core.new_worker(burst=True))
        self._finish(core)

    def _finish(self, core: Core[Any]) -> None:
        workers = core.finish_begin()
        self._destroy_all(core, core.pool.close())
        for worker in workers:
            if worker.handle is not None:
                worker.handle.join()
        self.calls_done.wait()
        core.finish_end()

    # ----------------------------------------------------------------- workers

    def _worker_main(self, core: Core[Any], worker: Worker, startup: _Startup) -> None:
        """A worker thread: create a resource, serve tasks, start afresh when unhealthy.

        A base worker built with the manager fails fast (`build()` reports the error); any later
        creation, for a replacement or a burst worker, is retried with capped backoff.
        """
        _owner.core = core
        fail_fast = not worker.burst
        try:
            while self._acquire(core, worker, startup if fail_fast else None):
                startup.report(None)
                fail_fast = False
                if not self._serve(core, worker):
                    return
                core.worker_replaced(worker)
        finally:
            startup.report(startup.error)
            core.worker_exited(worker)

    def _acquire(self, core: Core[Any], worker: Worker, startup: _Startup | None) -> bool:
        """Create the worker's resource; `False` if the worker should leave instead."""
        backoff = core.config.backoff
        shutdown = self.shutdown
        failures = 0
        while not shutdown.is_set():
            place = self._new_place(core)
            try:
                place.create()
            except BaseException as error:  # user code: any exception is a failed creation
                failures += 1
                core.creation_failed(worker, error, failures)
                if startup is not None:
                    startup.report(error)
                    return False
                if shutdown.wait(backoff.delay(failures)) or core.try_retire(worker):
                    return False
                continue
            core.worker_ready(worker, place)
            return True
        return False

    def _new_place(self, core: Core[Any]) -> Place:
        cfg = core.config
        place: Place = make_place(self._executor, cfg.on_create, cfg.on_destroy, LocalPlace)
        return place

    def _serve(self, core: Core[Any], worker: Worker) -> bool:
        """Run tasks until told to leave (`False`) or the resource turns unhealthy (`True`)."""
        channel = self.channel
        get, get_nowait, next_task = channel.get, channel.get_nowait, core.next_task
        timeout = core.config.policy.interval if worker.burst else None
        try:
            while True:
                try:
                    token = get_nowait()
                except Empty:
                    core.idle_begin()
                    try:
                        token = get(timeout=timeout)
                    except Empty:
                        token = None
                    finally:
                        core.idle_end()
                    if token is None and core.try_retire(worker):
                        return False
                if token is EXIT:
                    return False
                task = next_task(worker)
                if task is None:
                    continue  # cancelled or drained since it was queued
                replace = self._run(core, worker, task)
                task = None  # hold no settled task while waiting for the next one
                if replace:
                    return True
                if worker.burst and core.retiring and core.try_retire(worker):
                    return False  # idle between two tasks: leave as the policy asks
        finally:
            core.worker_releasing(worker)
            self._destroy_place(core, worker)

    def _destroy_place(self, core: Core[Any], worker: Worker) -> None:
        place, worker.place = worker.place, None
        try:
            place.destroy()
        except BaseException as error:  # user code: logged, never raised
            core.destroy_failed(error, worker)

    def _run(self, core: Core[Any], worker: Worker, task: TaskRecord[Any]) -> bool:
        """Run one attempt of `task`; return `True` if the worker must be replaced."""
        start = core.attempt_started(task, worker)
        watch = None if task.timeout is None else self._watch(core, task, start + task.timeout)
        try:
            result = worker.place.call(task)
        except BaseException as error:
            if watch is not None:
                watch.task = None
            return core.attempt_failed(worker, task, error, start)
        if watch is not None:
            watch.task = None
        core.attempt_succeeded(worker, task, result, start)
        return False

    # --------------------------------------------------------------- timeouts

    def _watch(self, core: Core[Any], task: TaskRecord[Any], deadline: float) -> _Watch:
        watch = _Watch(task, task.attempt)
        with self._deadline_lock:
            deadlines = self._deadlines
            if len(deadlines) > 4 * len(core.workers) + 64:
                # attempts that ended early leave their entry behind until its deadline: drop
                # them, so memory follows the running tasks, not the rate times the timeout
                deadlines[:] = [e for e in deadlines if e[2].task is not None]
                heapq.heapify(deadlines)
            heapq.heappush(deadlines, (deadline, next(self._seq), watch))
            earliest = deadlines[0][2] is watch
        if earliest:
            self.wake.set()
        return watch

    def _expire_deadlines(self, core: Core[Any], interval: float) -> float:
        """Time out overdue attempts; return how long the supervisor may sleep."""
        while True:
            now = time.perf_counter()
            with self._deadline_lock:
                if not self._deadlines:
                    return interval
                deadline, _, watch = self._deadlines[0]
                if deadline > now:
                    return min(interval, deadline - now)
                heapq.heappop(self._deadlines)
                task = watch.task
            if task is not None:
                core.deadline_passed(task, watch.attempt, now - deadline + (task.timeout or 0.0))
            task = None

    # -------------------------------------------------------------- resources

    def _destroy(self, core: Core[Any], resource: Any, worker: Worker | None = None) -> None:
        on_destroy = core.config.on_destroy
        if on_destroy is None:
            return
        try:
            on_destroy(resource)
        except BaseException as error:  # user code: logged, never raised
            core.destroy_failed(error, worker)

    def _destroy_all(self, core: Core[Any], resources: list[Any]) -> None:
        for resource in resources:
            self._destroy(core, resource)

    def _borrow(self, core: Core[R]) -> tuple[R, bool]:
        resource, pooled = core.pool.reserve()
        if resource is not None:
            return resource, pooled
        try:
            return core.config.on_create(), pooled
        except BaseException as error:  # user code: any exception is a failed creation
            core.pool.creation_failed(pooled)
            raise ResourceCreationError(f"on_create failed: {error!r}") from error

    def _give_back(self, core: Core[R], resource: R, pooled: bool, *, healthy: bool) -> None:
        if core.pool.give_back(resource, pooled, healthy=healthy):
            self._destroy(core, resource)

    # ---------------------------------------------------------------- run_task

    def run_task(self, core: Core[R], fn: Callable[[R], T], *, once: bool) -> T:
        """Run `fn` now in the calling thread on a pooled or temporary resource."""
        task = core.run_task_record(fn, once=once)
        try:
            result: T = self._run_task_steps(core, task)
        finally:
            core.run_task_returned()
        return result

    def _run_task_steps(self, core: Core[R], task: TaskRecord[Any]) -> Any:
        steps = run_task_steps(core, task)
        outcome: Any = None
        failure: BaseException | None = None
        while True:
            try:
                step = steps.send(outcome) if failure is None else steps.throw(failure)
            except StopIteration as done:
                return done.value
            outcome, failure = None, None
            if isinstance(step, Destroy):
                self._destroy(core, step.resource)
                continue
            try:
                if isinstance(step, Call):
                    outcome = run_here(task, step.resource)
                else:
                    outcome = core.config.on_create()
            except BaseException as error:  # handed to the steps, which decide
                failure = error
