"""The thread runtime: each worker is an OS thread; a supervisor thread scales and shuts down.

Everything here is about threads and blocking waits; every decision is the core's.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
import time
from _thread import allocate_lock
from collections.abc import Callable, Generator
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from tasker._admission import Admission
from tasker._core import Core
from tasker._lifecycle import Step, Steps, drive, start_steps, supervise_steps, worker_steps
from tasker._queue import NO_TOKEN
from tasker._run_task import run_task_steps
from tasker._task import TaskRecord, new_task_future
from tasker._worker import Worker
from tasker.executors import Executor, LocalPlace, Place, make_place, run_here

__all__ = ["ThreadRuntime", "thread_owner"]

R = TypeVar("R")
T = TypeVar("T")


class _Owner(threading.local):
    """Per thread: the core a worker or supervisor thread works for."""

    # a class default, so reading it in any other thread finds `None` without raising (and
    # formatting) an AttributeError on every blocking call
    core: Core[Any] | None = None


_owner = _Owner()


def thread_owner() -> Core[Any] | None:
    """The manager core the calling thread works for (a worker or a supervisor), if any."""
    return _owner.core


def _now(value: T) -> Generator[Any, Any, T]:
    """What a blocking step hands `drive`: its outcome, already there (it never suspends)."""
    yield from ()
    return value


class _Startup:
    """How a new worker's first `on_create` went, for `build()` to wait on (first report wins)."""

    __slots__ = ("_done", "error")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.error: BaseException | None = None

    def report(self, error: BaseException | None) -> None:
        if not self._done.is_set():
            self.error = error
            self._done.set()

    def wait(self) -> BaseException | None:
        self._done.wait()
        return self.error


class _Waiter:
    """A thread waiting for room in a full queue blocks on a lock the core releases once."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._lock.acquire()

    def wake(self) -> None:
        self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        return self._lock.acquire(True, -1 if timeout is None else timeout)


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

    new_waiter = staticmethod(_Waiter)
    """A submission waiting for room blocks its thread."""

    def wait_for_room(self, core: Core[Any], queued: Admission) -> TaskRecord[Any]:
        """Block until the core admits or refuses a submission, or its patience runs out."""
        waiter = queued.waiter
        assert isinstance(waiter, _Waiter)
        try:
            woken = waiter.wait(queued.patience)
        except BaseException:  # interrupted (KeyboardInterrupt): nobody will take the future
            core.overload.interrupted(queued)
            raise
        return core.overload.admitted(queued) if woken else core.overload.gave_up(queued)

    def interrupt(self, task: TaskRecord[Any]) -> None:
        """Ask the place running `task` to stop it.

        A local place cannot: the task sees `current_task().cancelled` instead.
        """
        assert self._core is not None
        for worker in list(self._core.workers):
            place = worker.place
            if worker.current is task and place is not None and not worker.parked:
                place.interrupt()

    def wait_killed(self, seconds: float) -> bool:
        """Sleep up to `seconds`; `True` as soon as the manager is killed."""
        return self.killed_signal.wait(seconds)

    # -------------------------------------------------------------- lifecycle

    def start(self, core: Core[Any]) -> None:
        """Fill the pool, start the base workers and the supervisor; raise if any part fails."""
        self._core = core
        self._drive(start_steps(core))

    def join(self, timeout: float | None) -> bool:
        """Wait until every worker has exited and every resource is destroyed."""
        if not self.terminated.wait(timeout):
            return False
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout)
        return True

    def run_task(self, core: Core[R], fn: Callable[[R], T], *, once: bool) -> T:
        """Run `fn` now in the calling thread on a pooled or temporary resource."""
        result: T = self._drive(run_task_steps(core, fn, once=once))
        return result

    def _drive(self, steps: Steps[T]) -> T:
        """Run a lifecycle in this thread, performing each step by calling."""
        driver = drive(steps, self._perform)
        try:
            driver.send(None)
        except StopIteration as done:
            result: T = done.value
            return result
        raise AssertionError("a thread lifecycle step suspended")

    def _perform(self, step: Step) -> Generator[Any, Any, Any]:
        return _now(getattr(self, step.action)(*step.args))

    # the actions of the lifecycles (see `_lifecycle`), performed by blocking

    def create_resource(self) -> Any:
        """Call `on_create()`."""
        assert self._core is not None
        return self._core.config.on_create()

    def destroy_resource(self, resource: Any) -> None:
        """Call `on_destroy(resource)`, if there is one."""
        assert self._core is not None
        on_destroy = self._core.config.on_destroy
        if on_destroy is not None:
            on_destroy(resource)

    def open_place(self) -> Place:
        """Make a worker's place and create its resource there."""
        assert self._core is not None
        cfg = self._core.config
        place: Place = make_place(self._executor, cfg.on_create, cfg.on_destroy, LocalPlace)
        place.create()
        return place

    def close_place(self, place: Place) -> None:
        """Destroy the resource of a worker's place."""
        place.destroy()

    def call(self, task: TaskRecord[Any], resource: Any) -> Any:
        """Run a `run_task` call in the calling thread."""
        return run_here(task, resource)

    def pause(self, seconds: float) -> bool:
        """Wait up to `seconds` for the shutdown; whether it came."""
        return self.shutdown.wait(seconds)

    def start_worker(self, worker: Worker) -> _Startup:
        """Start a worker thread."""
        core = self._core
        assert core is not None
        startup = _Startup()
        worker.handle = self._executor.start_worker(
            lambda: self._work(core, worker_steps(core, worker, startup.report)),
            name=f"{core.config.name}-worker-{worker.worker_id}",
        )
        return startup

    def started(self, startup: _Startup) -> BaseException | None:
        """Wait until a new worker's first creation ended."""
        return startup.wait()

    def start_supervisor(self) -> None:
        """Start the supervisor thread, which scales and, at the end, finishes."""
        core = self._core
        assert core is not None
        self._supervisor = threading.Thread(
            target=self._work,
            args=(core, supervise_steps(core)),
            name=f"{core.config.name}-supervisor",
            daemon=True,
        )
        self._supervisor.start()

    def wait_wake(self) -> None:
        """Sleep until woken or the next deadline, timing out overdue attempts first."""
        assert self._core is not None
        self.wake.wait(self._expire_deadlines(self._core, self._core.config.policy.interval))
        self.wake.clear()

    def join_workers(self, workers: list[Worker]) -> None:
        """Wait until every worker thread has exited."""
        for worker in workers:
            if worker.handle is not None:
                worker.handle.join()

    def calls_finished(self) -> None:
        """Wait until no `run_task` call holds a resource."""
        self.calls_done.wait()

    def _work(self, core: Core[Any], steps: Steps[None]) -> None:
        """A worker or supervisor thread: drive its lifecycle."""
        _owner.core = core
        self._drive(steps)

    # ----------------------------------------------------------------- workers

    def serve(self, worker: Worker) -> bool:
        """Run tasks until told to leave (`False`) or the resource turns unhealthy (`True`).

        A worker that completes a task while others are queued claims its next one in the
        same step (`Core.attempt_succeeded`); it takes a token from the channel only when it
        did not. A place that sends tasks ahead (`sends_ahead`) gets a `claim` with each call,
        by which it claims the worker's next task while the current one runs
        (`Ahead.claim`); a task so claimed and left unstarted is queued again.
        """
        core = self._core
        assert core is not None
        worker.wakeup = wakeup = allocate_lock()
        wakeup.acquire()
        succeeded = core.attempt_succeeded
        take = self.take_token
        if getattr(worker.place, "sends_ahead", False):
            claim = functools.partial(core.ahead.claim, worker, take)
            try:
                return self._serve(core, worker, succeeded, take, claim)
            finally:
                if worker.ahead is not None:
                    core.ahead.withdraw(worker)
        return self._serve(core, worker, succeeded, take, None)

    def _serve(
        self,
        core: Core[Any],
        worker: Worker,
        succeeded: Callable[..., TaskRecord[Any] | None],
        take: Callable[[], object],
        claim: Callable[[], TaskRecord[Any] | None] | None,
    ) -> bool:
        """`serve`'s loop."""
        call = worker.place.call
        task: TaskRecord[Any] | None = None
        while True:
            if task is None:
                task = self._next(core, worker)
                if task is None:  # told to leave, or its task was cancelled or drained meanwhile
                    if worker.leaving:
                        return False
                    continue
            start = core.attempt_started(task, worker)
            watch = None if task.timeout is None else self._watch(core, task, start + task.timeout)
            try:
                result = call(task) if claim is None else call(task, claim)
            except BaseException as error:
                if watch is not None:
                    watch.task = None
                if core.attempt_failed(worker, task, error, start):
                    return True
                task = None  # hold no settled task while waiting for the next one
            else:
                if watch is not None:
                    watch.task = None
                task = succeeded(worker, task, result, start, take)
                result = None
                if worker.leaving:
                    return False
            if (
                task is None
                and worker.burst
                and core.workforce.retiring
                and core.workforce.try_retire(worker)
            ):
                return False  # idle between two tasks: leave as the policy asks

    def _next(self, core: Core[Any], worker: Worker) -> TaskRecord[Any] | None:
        """The worker's next task: claimed ahead, handed to it while parked, or by a token.

        A task claimed ahead goes first (the attempt before it failed); an `EXIT` met while
        claiming ahead left `worker.leaving` set, with no token to take. A worker with nothing
        queued parks (see `tasker._parking`) and waits on its own lock for a task handed to it;
        `None` when it was woken to take a token, told to leave, or its token's task is gone.
        """
        if worker.ahead is not None:
            return core.ahead.promote(worker)
        if worker.leaving:
            return None
        # a worker whose last task found nothing queued is parked already
        # (`Core.attempt_succeeded`); one that is not parks unless a token is there to take,
        # or owed (a task is queued, and its submitter has yet to send its token): it waits
        # for one then, rather than spin
        if not worker.parked and not core.parking.park(worker):
            try:
                token = self.channel.get(
                    timeout=core.config.policy.interval if worker.burst else None
                )
            except Empty:  # another worker took it meanwhile
                return None
            return core.next_task(worker, token)
        wakeup = worker.wakeup
        try:
            if not wakeup.acquire(True, core.config.policy.interval if worker.burst else -1):
                if core.parking.unpark(worker):  # nothing came for a scaling interval
                    worker.leaving = core.workforce.try_retire(worker)
                    return None
                wakeup.acquire()  # woken just now: the wake-up is due
        except BaseException:
            core.parking.leave(worker)
            raise
        return core.parking.woken(worker)

    def take_token(self) -> object:
        """Take a token without waiting; `NO_TOKEN` if there is none."""
        try:
            return self.channel.get_nowait()
        except Empty:
            return NO_TOKEN

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
                core.cancellation.deadline_passed(
                    task, watch.attempt, now - deadline + (task.timeout or 0.0)
                )
            task = None
