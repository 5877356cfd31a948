"""The engine behind both managers: lifecycle, submission, failures, scaling and shutdown.

Every decision lives here once; a runtime (`_threads`, `_asyncio`) only supplies the workers'
loops, the waits and the calls into user code, and asks the core what to do at each step.

Locking: one lock (`Core._lock`) guards the lifecycle flags, the pending-task count and the
worker list. The queues are lock-free deques (see `_queue`). Nothing slow (user code, resource
hooks, collectors, loggers) ever runs under the lock, and the lock is never held across an
`await`, so the asyncio runtime never blocks its loop on it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Final, Generic, Protocol, TypeVar

from tasker import _validate as validate
from tasker._config import Config
from tasker._fanout import CollectorFanout
from tasker._outcome import FailureDecision, decide_failure
from tasker._pool import PoolSlots
from tasker._queue import EXIT, Channel, TaskQueue
from tasker._task import ENDED, TaskRecord, TaskState, release
from tasker._worker import Worker
from tasker.errors import ManagerBrokenError, ManagerClosedError, WorkerCrashedError
from tasker.events import Event
from tasker.metrics import COMPLETED as METRIC_COMPLETED
from tasker.metrics import FAILED as METRIC_FAILED
from tasker.metrics import RETRIED, InMemoryCollector, TaskMetrics
from tasker.scaling import ScalingSnapshot
from tasker.stats import KillReport, ManagerState, TaskStats

__all__ = ["Core", "Runtime", "Signal"]

R = TypeVar("R")
T = TypeVar("T")

_perf = time.perf_counter

QUEUED = TaskState.QUEUED
RUNNING = TaskState.RUNNING
COMPLETED = TaskState.COMPLETED
FAILED = TaskState.FAILED
TIMED_OUT = TaskState.TIMED_OUT
CANCELLED = TaskState.CANCELLED


class Signal(Protocol):
    """A flag that can be set from the engine (`threading.Event` or `asyncio.Event`)."""

    def set(self) -> None:
        """Raise the flag and wake whoever waits on it."""

    def is_set(self) -> bool:
        """Whether the flag is raised."""
        ...

    def clear(self) -> None:
        """Lower the flag."""


class Runtime(Protocol):
    """What the core needs from an executor's runtime."""

    # The runtime owns its primitives, typed as its own kind (a `threading.Event`, an
    # `asyncio.Event`); the core sees them as `Signal`s and a `Channel`.

    @property
    def channel(self) -> Channel:
        """The token channel of the task queues."""
        ...

    @property
    def shutdown(self) -> Signal:
        """Set when workers must leave: drained, killed, or a failed build."""
        ...

    @property
    def killed_signal(self) -> Signal:
        """Set by `kill()`."""
        ...

    @property
    def terminated(self) -> Signal:
        """Set once every worker has exited and every resource is destroyed."""
        ...

    @property
    def wake(self) -> Signal:
        """Set when the supervisor has something to look at."""
        ...

    @property
    def calls_done(self) -> Signal:
        """Set while no `run_task` call holds a resource."""
        ...

    @property
    def new_record(self) -> Callable[..., TaskRecord[Any]]:
        """Make a task record (a future) of the runtime's kind.

        Called as `(core, fn, args, task_id, priority, once, timeout)`.
        """
        ...

    def spawn(self, core: Core[Any], worker: Worker) -> None:
        """Start a worker's loop."""

    def interrupt(self, task: TaskRecord[Any]) -> None:
        """Stop a running task now if the runtime can (asyncio: cancel its attempt)."""

    def wait_killed(self, seconds: float) -> bool:
        """Sleep up to `seconds` in a thread task; `True` as soon as the manager is killed."""
        ...


class Core(Generic[R]):
    """Shared state and decisions of one manager. Runtimes call into it."""

    def __init__(self, config: Config[R], runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.logger = config.logger
        self.queue = TaskQueue(runtime.channel)
        self._new_record = runtime.new_record
        # the built-in collector is fed directly (one call per attempt); the user's collectors,
        # if any, through a fan-out that isolates their failures
        self.metrics_collector = InMemoryCollector()
        self.extra: CollectorFanout | None = (
            CollectorFanout(config.collectors, self.log) if config.collectors else None
        )
        self.pool: PoolSlots[R] = PoolSlots(config.pool_size)
        self._lock = threading.Lock()
        self._task_ids = itertools.count(1)
        self._worker_ids = itertools.count(1)
        self.workers: list[Worker] = []
        self._pending = 0  # submitted to the queues and not yet ended
        self._ready = 0  # workers holding a resource
        self._retire_quota = 0  # idle burst workers asked to leave
        self._idle = 0  # workers waiting for a task token
        self._claimed = 0  # queued tasks claimed by an idle worker on submission
        self._calls = 0  # run_task calls under way, each holding a resource
        self.calls_done = runtime.calls_done  # set while no run_task call holds a resource
        self.calls_done.set()
        # the lifecycle: one state, moved only by `_move`, which also keeps the three reads
        # the hot paths make (`accepting`, `closing`, `killed`) in step with it
        self._state = ManagerState.STARTING
        self.accepting = False
        self.closing = False
        self.killed = False
        self._failing_since: float | None = None
        self._last_create_error: BaseException | None = None
        self.shutdown = runtime.shutdown  # workers must leave: drained, killed, failed build
        self.killed_signal = runtime.killed_signal
        self.terminated = runtime.terminated
        self.wake = runtime.wake  # the supervisor has something to look at
        self.observers = config.plugins.observers(config.name, self.log)

    # ----------------------------------------------------------------- start

    def new_worker(self, *, burst: bool) -> Worker:
        """Register a worker; the runtime starts its loop."""
        worker = Worker(next(self._worker_ids), burst=burst)
        with self._lock:
            self.workers.append(worker)
        return worker

    def opened(self) -> None:
        """Every base worker is up: start accepting work."""
        cfg = self.config
        with self._lock:
            self._move(ManagerState.RUNNING)
        self.log(
            logging.INFO,
            Event.MANAGER_STARTED,
            workers=cfg.workers,
            max_workers=cfg.max_workers,
            pool_size=cfg.pool_size,
            executor=cfg.executor.name,
        )
        if self.observers.manager_started:
            self.observers.emit("tasker_manager_started")

    def bind(self, manager: object) -> None:
        """Hand the built manager to the collectors and the logger that ask for it (`bind`)."""
        for part in (*self.config.collectors, self.logger):
            bind = getattr(part, "bind", None)
            if not callable(bind):
                continue
            try:
                bind(manager)
            except Exception as error:  # a faulty adapter must not fail build()
                self.log(logging.ERROR, Event.BIND_FAILED, part=type(part).__name__, error=error)

    # ------------------------------------------------------------- submission

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        priority: bool,
        once: bool,
        timeout: float | None,
    ) -> TaskRecord[Any]:
        """Queue `fn(resource, *args)`; raise at once if the manager does not accept work.

        A task that finds a worker idle is claimed for it: a later `cancel_queued` leaves it
        to run, as it would had the worker already picked it up.
        """
        if not callable(fn):
            raise TypeError(f"task must be callable, got {type(fn).__name__}")
        validate.flags(priority, once)
        if not self.accepting:
            raise self.refusal()
        if timeout is None:
            timeout = self.config.timeout
        else:  # math.inf: no limit for this task, whatever the manager's default
            timeout = validate.time_limit("timeout", timeout)
        task = self._new_record(self, fn, args, next(self._task_ids), priority, once, timeout)
        with self._lock:
            if not self.accepting:
                raise self.refusal()
            self._pending += 1
            if self._idle > self._claimed:
                task.claimed = True
                self._claimed += 1
            self.queue.put(task)
            # counted once accepted, before a worker can finish it
            self.metrics_collector.record_arrival(task)
        if self.extra is not None:
            self.extra.record_arrival(task)
        if self.observers.task_queued:
            self.observers.emit("tasker_task_queued", task=task)
        return task

    def check_open(self, action: str) -> None:
        """Raise `ManagerClosedError` if the manager was stopped or killed."""
        if self.closing or self.killed:
            state = self.state.value
            raise ManagerClosedError(f"cannot {action} manager {self.config.name!r}: it is {state}")

    def refusal(self) -> RuntimeError:
        """The error explaining why work is refused right now."""
        if self._state is ManagerState.BROKEN:
            error = ManagerBrokenError(
                f"manager {self.config.name!r} is broken: no worker could create its resource "
                f"for {self.config.backoff.broken_after} s; last error: "
                f"{self._last_create_error!r}"
            )
            error.__cause__ = self._last_create_error
            return error
        state = self._state.value
        return ManagerClosedError(
            f"cannot submit tasks: manager {self.config.name!r} was {state}"
            if state == "killed"
            else f"cannot submit tasks: manager {self.config.name!r} is {state}"
        )

    def discard(self, task: TaskRecord[Any]) -> bool:
        """Its caller cancels a task: end it as cancelled if it is still queued.

        O(1): the record stays in its deque, ended; the worker that meets it skips it.
        """
        with self._lock:
            if task.state is not QUEUED:
                return False
            task.state = CANCELLED
            self.queue.forget(task)
            self._pending -= 1
            wake = self.closing and not self._pending
        release(task)
        self._conclude(task, CANCELLED)
        if wake:
            self.wake.set()
        return True

    def cancel_running(self, task: TaskRecord[Any]) -> bool:
        """Its caller cancels a running task (asyncio): answer it now, interrupt the attempt."""
        with self._lock:
            if task.state is not RUNNING:
                return False
            task.state = CANCELLED
            task.cancel_requested = True
        self.runtime.interrupt(task)
        self._conclude(task, CANCELLED)
        return True

    def idle_begin(self) -> None:
        """A worker starts waiting for a task token."""
        with self._lock:
            self._idle += 1

    def idle_end(self) -> None:
        """A worker stops waiting for a task token."""
        with self._lock:
            self._idle -= 1

    def task_done(self) -> None:
        """One pending task ended; wake the supervisor when a stop was waiting for it."""
        with self._lock:
            self._pending -= 1
            if self._pending or not self.closing:
                return
        self.wake.set()

    def guard_callback(self, fn: Callable[[T], object]) -> Callable[[T], None]:
        """Wrap a done-callback so that an exception it raises is logged, never propagated."""

        def guarded(future: T) -> None:
            try:
                fn(future)
            except BaseException as error:  # callbacks must never break a worker
                self.log(
                    logging.ERROR,
                    Event.CALLBACK_FAILED,
                    task_id=getattr(future, "task_id", None),
                    callback=getattr(fn, "__qualname__", repr(fn)),
                    error=error,
                )

        return guarded

    # ---------------------------------------------------------------- metrics

    def record_arrival(self, task: TaskRecord[Any]) -> None:
        """Tell every collector a task arrived."""
        self.metrics_collector.record_arrival(task)
        if self.extra is not None:
            self.extra.record_arrival(task)

    def next_task(self, worker: Worker) -> TaskRecord[Any] | None:
        """A worker took a task token: claim the next queued task for it, or `None`.

        Taking and claiming happen under the lock, so `kill()` sees every task either queued or
        running, never in between.
        """
        with self._lock:
            task = self.queue.take()
            if task is None:
                return None
            task.state = RUNNING
            worker.current = task
            if task.claimed:
                self._claimed -= 1
            if task.attempt == 0:  # its future leaves PENDING before kill() can end it
                task.set_running_or_notify_cancel()
        return task

    def attempt_started(self, task: TaskRecord[Any], worker: Worker | None) -> float:
        """Mark an attempt as begun; return its start time (for the wait and run durations)."""
        task.attempt += 1
        if worker is not None:
            task.worker_id = worker.worker_id
            task.resource = worker.resource
        task.started_at = start = _perf()
        if self.extra is not None:
            self.extra.record_start(task, start - task.queued_at if worker else 0.0)
        if self.observers.task_started:
            self.observers.emit(
                "tasker_task_started", task=task, worker_id=worker.worker_id if worker else None
            )
        return start

    def record_attempt(
        self,
        task: TaskRecord[Any],
        wait_time: float,
        elapsed: float,
        outcome: int,
        error: BaseException | None = None,
    ) -> None:
        """Tell every collector how an attempt ended (`outcome` from `tasker.metrics`).

        The user's collectors heard `record_start` when the attempt began; the built-in one
        takes the wait and the run together, in one call.
        """
        self.metrics_collector.record_attempt(wait_time, elapsed, outcome)
        extra = self.extra
        if extra is None:
            return
        if outcome == METRIC_COMPLETED:
            extra.record_completion(task, elapsed)
        elif outcome == METRIC_FAILED:
            assert error is not None
            extra.record_failure(task, elapsed, error)
        else:
            assert error is not None
            extra.record_retry(task, error)

    # --------------------------------------------------------------- outcomes

    def _conclude(
        self,
        task: TaskRecord[Any],
        state: TaskState,
        value: Any = None,
        wait: float = 0.0,
        elapsed: float = 0.0,
        *,
        record: bool = True,
    ) -> None:
        """The terminal steps of a task that just moved to `state`, performed once.

        Metrics first, then the observers and the log, then the caller: whoever sees the
        outcome finds it counted already. `value` is the result or the error; `record=False`
        leaves out the attempt metrics (no attempt ran).
        """
        if not record or state is CANCELLED:
            pass
        elif state is COMPLETED:
            if self.extra is None:
                self.metrics_collector.record_attempt(wait, elapsed, METRIC_COMPLETED)
            else:
                self.record_attempt(task, wait, elapsed, METRIC_COMPLETED)
        else:
            self.record_attempt(task, wait, elapsed, METRIC_FAILED, value)
            if state is TIMED_OUT:
                self._log_attempt(
                    logging.WARNING, Event.TASK_TIMED_OUT, task, elapsed, timeout=task.timeout
                )
            else:
                self._log_attempt(logging.DEBUG, Event.TASK_FAILED, task, elapsed, error=value)
        if self.observers.task_finished:
            error = None if state is COMPLETED or state is CANCELLED else value
            self.observers.emit("tasker_task_finished", task=task, outcome=state, error=error)
        if state is COMPLETED:
            task._resolve(value)
        elif state is CANCELLED:
            task._abandon()
        else:
            task._fail(value)

    def _settle(
        self,
        task: TaskRecord[Any],
        state: TaskState,
        value: Any = None,
        wait: float = 0.0,
        elapsed: float = 0.0,
    ) -> bool:
        """Move a task that has not ended to `state` and conclude it; `False` if it had ended."""
        with self._lock:
            if task.state in ENDED:
                return False
            task.state = state
        self._conclude(task, state, value, wait, elapsed)
        return True

    def _end_attempt(self, worker: Worker, task: TaskRecord[Any], state: TaskState) -> bool:
        """The worker's attempt returned: free the worker; `True` if the task moved to `state`."""
        with self._lock:
            worker.current = None
            ended = task.state is RUNNING
            if ended:
                task.state = state
            if self.killed:
                return ended
            self._pending -= 1
            if self._pending or not self.closing:
                return ended
        self.wake.set()
        return ended

    def attempt_succeeded(
        self, worker: Worker, task: TaskRecord[Any], result: object, start: float
    ) -> None:
        """A worker's attempt returned `result`: complete the task unless it ended meanwhile."""
        elapsed = _perf() - start
        release(task)
        if self._end_attempt(worker, task, COMPLETED):
            self._conclude(task, COMPLETED, result, start - task.queued_at, elapsed)

    def attempt_failed(
        self, worker: Worker, task: TaskRecord[Any], error: BaseException, start: float
    ) -> bool:
        """A worker's attempt raised; return `True` if the worker must be replaced.

        The worker keeps the task as its current one while the health check decides, so a
        `kill()` from inside the check finds it running and cancels it.
        """
        elapsed = _perf() - start
        wait_time = start - task.queued_at
        if task.state is not RUNNING:  # answered elsewhere (kill, timeout, cancellation)
            release(task)
            self._end_attempt(worker, task, FAILED)
            # an interrupted place (a timeout, kill()) may have been torn down with its task
            return isinstance(error, WorkerCrashedError)
        decision = self._decide(task, error)
        if decision.replace_worker:
            self.log(
                logging.WARNING,
                Event.WORKER_UNHEALTHY,
                worker_id=worker.worker_id,
                task_id=task.task_id,
                attempt=task.attempt,
                error=error,
            )
        if decision.retry and self._requeue(worker, task, error, wait_time, elapsed):
            return True
        final = decision.error if decision.error is not None else error
        release(task)
        if self._end_attempt(worker, task, FAILED):
            self._conclude(task, FAILED, final, wait_time, elapsed)
        return decision.replace_worker

    def attempt_cancelled(self, worker: Worker, task: TaskRecord[Any]) -> None:
        """A running attempt was interrupted because its caller cancelled it (asyncio)."""
        release(task)
        if self._end_attempt(worker, task, CANCELLED):
            self._conclude(task, CANCELLED)

    def _decide(self, task: TaskRecord[Any], error: BaseException) -> FailureDecision:
        cfg = self.config
        return decide_failure(
            task,
            error,
            health_check=cfg.health_check,
            max_retries=cfg.max_retries,
            log=self.log,
        )

    def _requeue(
        self,
        worker: Worker,
        task: TaskRecord[Any],
        error: BaseException,
        wait_time: float,
        elapsed: float,
    ) -> bool:
        """Queue a retry at the front of its queue; `False` if the manager can no longer run it.

        Also `True` when the task ended meanwhile (a `kill()` from the health check): there is
        nothing left to deliver.
        """
        # counted before the retry is visible, so metrics() never lags what callers can see
        self.record_attempt(task, wait_time, elapsed, RETRIED, error)
        with self._lock:
            if task.state is not RUNNING:
                worker.current = None
                ended_elsewhere = True
            else:
                ended_elsewhere = False
                if self._state is ManagerState.KILLED or self._state is ManagerState.BROKEN:
                    return False
                worker.current = None
                task.state = QUEUED
                task.queued_at = _perf()
                self.queue.put_front(task)
        if ended_elsewhere:
            release(task)
            if not self.killed:
                self.task_done()
            return True
        self._log_retry(task, error, elapsed)
        return True

    def _log_retry(self, task: TaskRecord[Any], error: BaseException, elapsed: float) -> None:
        if self.observers.task_retried:
            self.observers.emit("tasker_task_retried", task=task, error=error)
        self._log_attempt(
            logging.WARNING,
            Event.TASK_RETRIED,
            task,
            elapsed,
            max_retries=self.config.max_retries,
            error=error,
        )

    # --------------------------------------------------------------- run_task

    def run_task_record(self, fn: Callable[[R], Any], *, once: bool) -> TaskRecord[Any]:
        """Start a `run_task` call: check the state, make and count its record."""
        if not callable(fn):
            raise TypeError(f"task must be callable, got {type(fn).__name__}")
        validate.flag("once", once)
        with self._lock:
            if self.closing or self.killed:
                raise self.refusal()
            self._calls += 1
            self.calls_done.clear()
        task = self._new_record(self, fn, (), next(self._task_ids), False, once, None)
        task.state = RUNNING
        task.set_running_or_notify_cancel()
        self.record_arrival(task)
        return task

    def run_task_returned(self) -> None:
        """A `run_task` call has given back (or destroyed) its resource.

        The shutdown's last step waits for every call to get here, so `stop()` never reports
        a manager stopped while a resource is still open.
        """
        with self._lock:
            self._calls -= 1
            if self._calls:
                return
        self.calls_done.set()

    def run_task_failed(
        self, task: TaskRecord[Any], error: BaseException, start: float
    ) -> tuple[bool, BaseException | None]:
        """Settle a failed `run_task` attempt.

        Returns `(unhealthy, error_to_raise)`: an unhealthy resource must be destroyed, and
        `error_to_raise` is `None` when the task is to be retried on a fresh one.
        """
        elapsed = _perf() - start
        decision = self._decide(task, error)
        if decision.retry and not self.killed:
            self.record_attempt(task, 0.0, elapsed, RETRIED, error)
            self._log_retry(task, error, elapsed)
            return True, None
        final = decision.error if decision.error is not None else error
        self._settle(task, FAILED, final, 0.0, elapsed)
        return decision.replace_worker, final

    def run_task_unavailable(self, task: TaskRecord[Any], error: BaseException) -> None:
        """No resource could be made for a `run_task` call."""
        self.record_attempt(task, 0.0, 0.0, METRIC_FAILED, error)

    def deadline_passed(self, task: TaskRecord[Any], attempt: int, elapsed: float) -> None:
        """Attempt `attempt` of a thread task outlived its timeout: time it out if it still runs.

        The task is told to stop (`current_task().cancelled`); its worker is not replaced and
        picks up the next task once the overdue one returns.
        """
        with self._lock:
            if task.attempt != attempt or task.state is not RUNNING:
                return
            task.state = TIMED_OUT
            task.cancel_requested = True
        self.runtime.interrupt(task)  # a place that can stop the attempt does so now
        self._conclude(
            task, TIMED_OUT, self._timeout_error(task), task.started_at - task.queued_at, elapsed
        )

    def _timeout_error(self, task: TaskRecord[Any]) -> TimeoutError:
        return TimeoutError(f"task {task.task_id} timed out after {task.timeout} s")

    def attempt_expired(self, worker: Worker, task: TaskRecord[Any], start: float) -> None:
        """An attempt was cancelled by its timeout (asyncio): settle it, keep the worker."""
        elapsed = _perf() - start
        release(task)
        task.cancel_requested = True
        if self._end_attempt(worker, task, TIMED_OUT):
            self._conclude(
                task, TIMED_OUT, self._timeout_error(task), start - task.queued_at, elapsed
            )

    def run_task_succeeded(self, task: TaskRecord[Any], start: float) -> None:
        """Count a successful `run_task` attempt (the caller gets the result directly)."""
        self._settle(task, COMPLETED, None, 0.0, _perf() - start)

    # -------------------------------------------------------------- resources

    def destroy_failed(self, error: BaseException, worker: Worker | None = None) -> None:
        """`on_destroy` raised: log it (it is never raised)."""
        self.log(
            logging.ERROR,
            Event.RESOURCE_DESTROY_FAILED,
            worker_id=worker.worker_id if worker else None,
            error=error,
        )

    def creation_failed(self, worker: Worker, error: BaseException, failures: int) -> None:
        """A worker's `on_create` failed; declare the manager broken if nothing is alive."""
        self.log(
            logging.ERROR,
            Event.RESOURCE_CREATE_FAILED,
            worker_id=worker.worker_id,
            failures=failures,
            error=error,
        )
        with self._lock:
            self._last_create_error = error
            # broken only counts while running or stopping with nobody alive: a stop must not
            # wait for queued tasks that no worker will ever run
            state = self._state
            if self._ready or not (state is ManagerState.RUNNING or state is ManagerState.STOPPING):
                return
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
                return
            if now - self._failing_since < self.config.backoff.broken_after:
                return
            if state is ManagerState.RUNNING:
                self._move(ManagerState.BROKEN)
            elif not self.queue.main_depth + self.queue.priority_depth:
                return  # stopping, and the queues were failed already
            doomed = self.queue.drain()
            for task in doomed:
                task.state = FAILED
            self._pending -= len(doomed)
            wake = self.closing and not self._pending
        self.log(logging.ERROR, Event.MANAGER_BROKEN, failed_tasks=len(doomed), error=error)
        for task in doomed:
            release(task)
            broken = ManagerBrokenError(
                f"task {task.task_id} cannot run: manager {self.config.name!r} is broken "
                f"(no worker could create its resource): {error!r}"
            )
            broken.__cause__ = error
            self._conclude(task, FAILED, broken, record=False)
        if wake:
            self.wake.set()

    def worker_ready(self, worker: Worker, place: Any) -> None:
        """A worker's place created its resource (see `tasker.executors.Place`)."""
        worker.place = place
        worker.resource = place.resource
        with self._lock:
            self._ready += 1
            self._failing_since = None
            recovered = self._state is ManagerState.BROKEN
            if recovered:
                self._move(ManagerState.RUNNING)
        self.log(logging.INFO, Event.WORKER_STARTED, worker_id=worker.worker_id, burst=worker.burst)
        if self.observers.worker_started:
            self.observers.emit(
                "tasker_worker_started", worker_id=worker.worker_id, burst=worker.burst
            )
        if recovered:
            self.log(logging.INFO, Event.MANAGER_RECOVERED, worker_id=worker.worker_id)

    def worker_releasing(self, worker: Worker) -> Any:
        """A worker is about to destroy its resource; return it."""
        resource, worker.resource = worker.resource, None
        with self._lock:
            self._ready -= 1
        return resource

    def worker_replaced(self, worker: Worker) -> None:
        """A worker whose resource turned unhealthy starts afresh, under a new id."""
        old = worker.worker_id
        worker.worker_id = next(self._worker_ids)
        self.log(
            logging.WARNING,
            Event.WORKER_REPLACED,
            worker_id=worker.worker_id,
            replaced_worker_id=old,
        )
        if self.observers.worker_replaced:
            self.observers.emit(
                "tasker_worker_replaced", worker_id=worker.worker_id, replaced_worker_id=old
            )

    def worker_exited(self, worker: Worker) -> None:
        """A worker's loop returned."""
        with self._lock:
            self.workers.remove(worker)
        self.log(logging.INFO, Event.WORKER_STOPPED, worker_id=worker.worker_id)
        if self.observers.worker_stopped:
            self.observers.emit("tasker_worker_stopped", worker_id=worker.worker_id)

    @property
    def retiring(self) -> bool:
        """Whether the policy wants burst workers to leave (a cheap read for worker loops)."""
        return self._retire_quota > 0

    def try_retire(self, worker: Worker) -> bool:
        """An idle burst worker asks whether it should leave."""
        if not worker.burst:
            return False
        with self._lock:
            if self._retire_quota <= 0 or self.shutdown.is_set():
                return False
            self._retire_quota -= 1
            return True

    # ---------------------------------------------------------------- scaling

    def supervisor_tick(self) -> int | None:
        """One supervisor step: `None` when it is time to finish, else the workers to add."""
        if self.killed:
            return None
        if self.closing:
            with self._lock:
                if not self._pending:
                    return None
        return self._plan_scaling()

    def _plan_scaling(self) -> int:
        cfg = self.config
        metrics = self.metrics_collector.metrics()
        # the policy sees rates over the last three decisions, not the 1 s metrics window: a
        # step in the load shows within one interval instead of a second
        arrival_rate, completion_rate = self.metrics_collector.rates(
            window=max(3 * cfg.policy.interval, self.metrics_collector.window / 10)
        )
        workers = list(self.workers)
        snapshot = ScalingSnapshot(
            now=time.monotonic(),
            base_workers=cfg.workers,
            max_workers=cfg.max_workers,
            workers=len(workers),
            busy_workers=sum(1 for w in workers if w.current is not None),
            queued_tasks=self.queue.main_depth + self.queue.priority_depth,
            arrival_rate=arrival_rate,
            completion_rate=completion_rate,
            average_execution_time=metrics.average_execution_time,
            p95_wait_time=metrics.p95_wait_time,
        )
        try:
            target = int(cfg.policy.target_workers(snapshot))
        except BaseException as error:  # user code: contained, whatever it raises
            self.log(logging.ERROR, Event.POLICY_FAILED, policy=repr(cfg.policy), error=error)
            return 0
        target = max(cfg.workers, min(cfg.max_workers, target))
        with self._lock:
            if self.shutdown.is_set():
                return 0
            live = len(self.workers)
            if self.closing:  # winding down: idle bursts may leave, none are added
                target = min(target, live)
            grow = target - live
            previous_quota = self._retire_quota
            self._retire_quota = max(0, -grow)
        if grow > 0:
            self.log(logging.INFO, Event.SCALED_UP, workers=live, target=target)
            if self.observers.scaled_up:
                self.observers.emit("tasker_scaled_up", workers=live, target=target)
        elif grow < 0 and self._retire_quota != previous_quota:
            self.log(logging.INFO, Event.SCALED_DOWN, workers=live, target=target)
            if self.observers.scaled_down:
                self.observers.emit("tasker_scaled_down", workers=live, target=target)
        return max(grow, 0)

    # --------------------------------------------------------------- shutdown

    def begin_stop(self) -> None:
        """Refuse new work; the supervisor finishes the shutdown once everything has drained."""
        with self._lock:
            if self.closing:
                return
            self._move(ManagerState.STOPPING)
            pending = self._pending
        self.log(logging.INFO, Event.MANAGER_STOPPING, pending_tasks=pending)
        self.wake.set()

    def cancel_queued(self) -> int:
        """Stop gracefully, but cancel every queued task first; return how many were cancelled.

        Running tasks finish as usual, and so do tasks claimed by an idle worker when they were
        submitted (`Executor.shutdown(cancel_futures=True)`).
        """
        self.begin_stop()
        with self._lock:
            queued = self.queue.drain(keep_claimed=True)
            for task in queued:
                task.state = CANCELLED
            self._pending -= len(queued)
        for task in queued:
            release(task)
            self._conclude(task, CANCELLED)
        self.wake.set()  # the supervisor checks whether anything is left to wait for
        return len(queued)

    def kill(self) -> KillReport:
        """Refuse new work, cancel queued tasks, abandon running ones, tear everything down.

        Every task that has not ended is ended here, under the lock: queued ones count as
        cancelled, running ones (their worker's current task) as abandoned.
        """
        with self._lock:
            if self._state is ManagerState.KILLED or self._state is ManagerState.STOPPED:
                return KillReport(cancelled_tasks=0, abandoned_tasks=0)
            self._move(ManagerState.KILLED)
            self.shutdown.set()
            queued = self.queue.drain()
            running = [
                w.current
                for w in self.workers
                if w.current is not None and w.current.state is RUNNING
            ]
            for task in queued:
                task.state = CANCELLED
            for task in running:
                task.state = CANCELLED
                task.cancel_requested = True
            self._pending = 0
            live = len(self.workers)
        for task in queued:
            release(task)
        for task in running:
            self.runtime.interrupt(task)
        self.killed_signal.set()
        for task in queued:
            self._conclude(task, CANCELLED)
        for task in running:
            self._conclude(task, CANCELLED)
            self.log(
                logging.WARNING,
                Event.TASK_ABANDONED,
                task_id=task.task_id,
                worker_id=task.worker_id,
                attempt=task.attempt,
            )
        self.queue.send(EXIT, live)
        self.wake.set()
        report = KillReport(cancelled_tasks=len(queued), abandoned_tasks=len(running))
        self.log(
            logging.WARNING,
            Event.MANAGER_KILLED,
            cancelled_tasks=report.cancelled_tasks,
            abandoned_tasks=report.abandoned_tasks,
        )
        return report

    def finish_begin(self) -> list[Worker]:
        """The supervisor's last act begins: release every worker; return them to join."""
        with self._lock:
            self.shutdown.set()
            workers = list(self.workers)
        # one EXIT per worker; after kill() this repeats its tokens, which is harmless and
        # reaches a burst worker started while kill() was taking its snapshot
        self.queue.send(EXIT, len(workers))
        return workers

    def finish_end(self) -> None:
        """Every worker has exited and every resource is destroyed."""
        with self._lock:
            if not self.killed:
                self._move(ManagerState.STOPPED)
        if not self.killed:
            self.log(logging.INFO, Event.MANAGER_STOPPED)
        if self.observers.manager_stopped:
            self.observers.emit("tasker_manager_stopped", killed=self.killed)
        self.terminated.set()

    # -------------------------------------------------------------- snapshots

    @property
    def state(self) -> ManagerState:
        """The lifecycle state."""
        return self._state

    _MOVES: Final = {
        ManagerState.STARTING: {ManagerState.RUNNING, ManagerState.STOPPED, ManagerState.KILLED},
        ManagerState.RUNNING: {ManagerState.BROKEN, ManagerState.STOPPING, ManagerState.KILLED},
        ManagerState.BROKEN: {ManagerState.RUNNING, ManagerState.STOPPING, ManagerState.KILLED},
        ManagerState.STOPPING: {ManagerState.STOPPED, ManagerState.KILLED},
        ManagerState.STOPPED: set(),
        ManagerState.KILLED: set(),
    }
    """Every move the lifecycle allows: `build()` opens, a failed build or `stop()` closes,
    `kill()` ends any state that is not final, broken and running alternate."""

    def _move(self, to: ManagerState) -> None:
        """The one transition of the manager's state (held under `_lock`)."""
        if to not in self._MOVES[self._state]:
            raise AssertionError(f"manager state cannot move from {self._state} to {to}")
        self._state = to
        self.accepting = to is ManagerState.RUNNING
        self.closing = to in (ManagerState.STOPPING, ManagerState.STOPPED, ManagerState.KILLED)
        self.killed = to is ManagerState.KILLED

    def stats(self) -> TaskStats:
        """A live snapshot of workers, queues and pool."""
        workers = list(self.workers)
        return TaskStats(
            base_workers=self.config.workers,
            active_workers=len(workers),
            burst_workers=sum(1 for w in workers if w.burst),
            max_workers=self.config.max_workers,
            busy_workers=sum(1 for w in workers if w.current is not None),
            queued_tasks=self.queue.main_depth,
            priority_tasks=self.queue.priority_depth,
            available_resources=self.pool.available,
            state=self.state,
        )

    def metrics(self) -> TaskMetrics:
        """The built-in collector's snapshot."""
        return self.metrics_collector.metrics()

    def log(self, level: int, event: str, /, **fields: object) -> None:
        """Log through the configured logger, tagged with the manager's name; never raise."""
        with suppress(BaseException):  # a broken logger must not break the engine
            self.logger.log(level, event, manager=self.config.name, **fields)

    def _log_attempt(
        self, level: int, event: str, task: TaskRecord[Any], duration: float, **fields: object
    ) -> None:
        """Log how an attempt ended, with the fields every attempt event carries."""
        self.log(
            level,
            event,
            task_id=task.task_id,
            worker_id=task.worker_id,
            attempt=task.attempt,
            queue=_queue_name(task),
            duration=duration,
            **fields,
        )


def _queue_name(task: TaskRecord[Any]) -> str:
    """The queue a task went through, as event fields and metric attributes name it."""
    return "priority" if task.priority else "main"
