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
from typing import Any, Generic, Protocol, TypeVar

from tasker._config import Config
from tasker._fanout import CollectorFanout
from tasker._outcome import FailureDecision, decide_failure
from tasker._pool import PoolSlots
from tasker._queue import EXIT, Channel, TaskQueue
from tasker._task import TaskRecord, release
from tasker._worker import Worker
from tasker.errors import ManagerBrokenError, ManagerClosedError
from tasker.events import Event
from tasker.metrics import COMPLETED, FAILED, RETRIED, InMemoryCollector, TaskMetrics
from tasker.scaling import ScalingSnapshot
from tasker.stats import KillReport, ManagerState, TaskStats

__all__ = ["Core", "Runtime", "Signal"]

R = TypeVar("R")
T = TypeVar("T")

_perf = time.perf_counter


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

    def new_signal(self) -> Signal:
        """A fresh flag of the runtime's kind."""
        ...

    def new_channel(self) -> Channel:
        """A fresh token channel for the task queues."""
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
        self.queue = TaskQueue(runtime.new_channel())
        self._new_record = runtime.new_record
        # the built-in collector is fed directly (one call per attempt); the user's collectors,
        # if any, through a fan-out that isolates their failures
        self.metrics_collector = InMemoryCollector()
        self.extra: CollectorFanout | None = (
            CollectorFanout(config.collectors, config.logger) if config.collectors else None
        )
        self.pool: PoolSlots[R] = PoolSlots(config.pool_size)
        self._lock = threading.Lock()
        self._task_ids = itertools.count(1)
        self._worker_ids = itertools.count(1)
        self.workers: list[Worker] = []
        self._pending = 0  # submitted to the queues and not yet ended
        self._ready = 0  # workers holding a resource
        self._retire_quota = 0  # idle burst workers asked to leave
        # lifecycle flags; `accepting` is their fast summary for the submit path
        self.accepting = False
        self.killed = False
        self.closing = False
        self._broken = False
        self._stopped = False
        self._failing_since: float | None = None
        self._last_create_error: BaseException | None = None
        self.shutdown = runtime.new_signal()  # workers must leave: drained, killed, failed build
        self.killed_signal = runtime.new_signal()
        self.terminated = runtime.new_signal()
        self.wake = runtime.new_signal()  # the supervisor has something to look at
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
            self.accepting = True
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
        """Queue `fn(resource, *args)`; raise at once if the manager does not accept work."""
        if not callable(fn):
            raise TypeError(f"task must be callable, got {type(fn).__name__}")
        if not self.accepting:
            raise self.refusal()
        if timeout is None:
            timeout = self.config.timeout
        elif isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        task = self._new_record(self, fn, args, next(self._task_ids), priority, once, timeout)
        self.metrics_collector.record_arrival(task)
        if self.extra is not None:
            self.extra.record_arrival(task)
        with self._lock:
            if not self.accepting:
                raise self.refusal()
            self._pending += 1
            self.queue.put(task)
        if self.observers.task_queued:
            self.observers.emit("tasker_task_queued", task=task)
        return task

    def refusal(self) -> RuntimeError:
        """The error explaining why work is refused right now."""
        if self._broken and not (self.closing or self.killed):
            error = ManagerBrokenError(
                f"manager {self.config.name!r} is broken: no worker could create its resource "
                f"for {self.config.backoff.broken_after} s; last error: "
                f"{self._last_create_error!r}"
            )
            error.__cause__ = self._last_create_error
            return error
        state = "killed" if self.killed else "stopped" if self._stopped else "stopping"
        return ManagerClosedError(
            f"cannot submit tasks: manager {self.config.name!r} was {state}"
            if state == "killed"
            else f"cannot submit tasks: manager {self.config.name!r} is {state}"
        )

    def discard(self, task: TaskRecord[Any]) -> bool:
        """A queued task was cancelled by its caller: take it out of its queue if still there."""
        if self.queue.remove(task):
            release(task)
            # no worker will dequeue it: tell `concurrent.futures.wait()` and `as_completed()`
            task.set_running_or_notify_cancel()
            self.finished(task, "cancelled", None)
            self.task_done()
            return True
        return False

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

    def next_task(self) -> TaskRecord[Any] | None:
        """A worker took a task token: the task to run now, or `None` if there is none.

        The token's task may have been cancelled by its caller (taken out of its queue, or
        still in it) or drained by `kill()` since it was queued.
        """
        task = self.queue.take()
        if task is None:
            return None
        if task.attempt == 0 and not task.set_running_or_notify_cancel():
            release(task)
            self.finished(task, "cancelled", None)
            self.task_done()  # cancelled while queued, after a worker had dequeued it
            return None
        if self.killed:  # dequeued just as kill() drained the queues: do not start it
            release(task)
            task._abandon()
            return None
        return task

    def attempt_started(self, task: TaskRecord[Any], worker: Worker | None) -> float:
        """Mark an attempt as begun; return its start time (for the wait and run durations)."""
        task.attempt += 1
        if worker is not None:
            task.worker_id = worker.worker_id
            task.resource = worker.resource
            worker.current = task
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
        if outcome == COMPLETED:
            extra.record_completion(task, elapsed)
        elif outcome == FAILED:
            assert error is not None
            extra.record_failure(task, elapsed, error)
        else:
            assert error is not None
            extra.record_retry(task, error)

    # --------------------------------------------------------------- outcomes

    def finished(self, task: TaskRecord[Any], outcome: str, error: BaseException | None) -> None:
        """Tell observers a task ended for good."""
        if self.observers.task_finished:
            self.observers.emit("tasker_task_finished", task=task, outcome=outcome, error=error)

    def attempt_succeeded(
        self, worker: Worker, task: TaskRecord[Any], result: object, start: float
    ) -> None:
        """Settle a successful attempt on a worker: metrics first, then the caller."""
        elapsed = _perf() - start
        if self._attempt_ended(worker, task):
            self._settled_elsewhere(task)
            return
        wait = start - task.queued_at
        if self.extra is None:
            self.metrics_collector.record_attempt(wait, elapsed, COMPLETED)
        else:
            self.record_attempt(task, wait, elapsed, COMPLETED)
        if self.observers.task_finished:
            self.finished(task, "completed", None)
        release(task)
        task._resolve(result)
        self.task_done()

    def attempt_failed(
        self, worker: Worker, task: TaskRecord[Any], error: BaseException, start: float
    ) -> bool:
        """Settle a failed attempt on a worker; return `True` if the worker must be replaced."""
        elapsed = _perf() - start
        if self._attempt_ended(worker, task):
            self._settled_elsewhere(task)
            return False
        wait_time = start - task.queued_at
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
        if decision.retry and self._requeue(task, error, wait_time, elapsed):
            return True
        release(task)
        self._deliver_failure(task, decision, error, wait_time, elapsed)
        self.task_done()
        return decision.replace_worker

    def _attempt_ended(self, worker: Worker, task: TaskRecord[Any]) -> bool:
        """The worker's attempt ended: `True` if its caller was answered elsewhere already.

        A kill, a cancellation or a timeout may have answered the caller while the attempt ran.
        A timed attempt is closed under the lock that `deadline_passed` takes too, so the
        worker and the timeout never both settle it.
        """
        if task.timeout is None:
            worker.current = None
            return self.killed or task.cancel_requested
        with self._lock:
            worker.current = None
            return self.killed or task.cancel_requested

    def _settled_elsewhere(self, task: TaskRecord[Any]) -> None:
        """An attempt ended after its caller got its outcome from someone else.

        After `kill()` the caller already has `CancelledError` (and nothing is pending any
        more); after a timeout or a cancellation the caller knows too, but the task still
        counted as pending until now.
        """
        release(task)
        if self.killed:
            task._abandon()
        else:
            self.task_done()

    def attempt_cancelled(self, worker: Worker, task: TaskRecord[Any]) -> None:
        """A running attempt was interrupted because its caller cancelled it (asyncio)."""
        worker.current = None
        if not self.killed:  # kill() reports its own cancellations
            self.finished(task, "cancelled", None)
        self._settled_elsewhere(task)

    def _decide(self, task: TaskRecord[Any], error: BaseException) -> FailureDecision:
        cfg = self.config
        return decide_failure(
            task,
            error,
            health_check=cfg.health_check,
            max_retries=cfg.max_retries,
            logger=self.logger,
        )

    def _deliver_failure(
        self,
        task: TaskRecord[Any],
        decision: FailureDecision,
        error: BaseException,
        wait_time: float,
        elapsed: float,
    ) -> BaseException:
        final = decision.error if decision.error is not None else error
        self.record_attempt(task, wait_time, elapsed, FAILED, final)
        self._log_attempt(logging.DEBUG, Event.TASK_FAILED, task, elapsed, error=final)
        self.finished(task, "failed", final)
        task._fail(final)
        return final

    def _requeue(
        self, task: TaskRecord[Any], error: BaseException, wait_time: float, elapsed: float
    ) -> bool:
        """Queue a retry at the front of its queue; `False` if the manager can no longer run it."""
        # counted before the retry is visible, so metrics() never lags what callers can see
        self.record_attempt(task, wait_time, elapsed, RETRIED, error)
        with self._lock:
            requeued = not (self.killed or self._broken)
            if requeued:
                task.queued_at = _perf()
                self.queue.put_front(task)
        if not requeued:
            return False
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
        if self.closing or self.killed:
            raise self.refusal()
        task = self._new_record(self, fn, (), next(self._task_ids), False, once, None)
        task.set_running_or_notify_cancel()
        self.record_arrival(task)
        return task

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
        self.record_attempt(task, 0.0, elapsed, FAILED, final)
        self.finished(task, "failed", final)
        return decision.replace_worker, final

    def run_task_unavailable(self, task: TaskRecord[Any], error: BaseException) -> None:
        """No resource could be made for a `run_task` call."""
        self.record_attempt(task, 0.0, 0.0, FAILED, error)

    def deadline_passed(self, task: TaskRecord[Any], attempt: int, elapsed: float) -> None:
        """Attempt `attempt` of a thread task outlived its timeout: time it out if it still runs."""
        with self._lock:  # see `_attempt_ended`
            if (
                task.attempt != attempt
                or task.cancel_requested
                or not any(w.current is task for w in self.workers)
            ):
                return
            task.cancel_requested = True
        self.attempt_timed_out(task, elapsed)

    def attempt_timed_out(self, task: TaskRecord[Any], elapsed: float) -> None:
        """A running attempt outlived its timeout: its caller gets `TimeoutError` now.

        The task is told to stop (`current_task().cancelled`); its worker is not replaced and
        picks up the next task once the overdue one returns.
        """
        task.cancel_requested = True
        error = TimeoutError(f"task {task.task_id} timed out after {task.timeout} s")
        if task._fail(error):
            self.record_attempt(task, task.started_at - task.queued_at, elapsed, FAILED, error)
            self.finished(task, "timed_out", error)
            self._log_attempt(
                logging.WARNING, Event.TASK_TIMED_OUT, task, elapsed, timeout=task.timeout
            )

    def attempt_expired(self, worker: Worker, task: TaskRecord[Any], start: float) -> None:
        """An attempt was cancelled by its timeout (asyncio): settle it, keep the worker."""
        worker.current = None
        release(task)
        self.attempt_timed_out(task, _perf() - start)
        self.task_done()

    def run_task_succeeded(self, task: TaskRecord[Any], start: float) -> None:
        """Count a successful `run_task` attempt."""
        self.record_attempt(task, 0.0, _perf() - start, COMPLETED)
        self.finished(task, "completed", None)

    # -------------------------------------------------------------- resources

    def destroy_failed(self, error: BaseException, worker: Worker | None = None) -> None:
        """`on_destroy` raised: log it (it is never raised)."""
        self.log(
            logging.ERROR,
            Event.RESOURCE_DESTROY_FAILED,
            worker_id=worker.worker_id if worker else None,
            error=error,
        )

    def creation_failed(self, worker: Worker, error: Exception, failures: int) -> None:
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
            if self._ready or self.killed or self._broken:
                return
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
                return
            if now - self._failing_since < self.config.backoff.broken_after:
                return
            self._broken = True
            self.accepting = False
            doomed = self.queue.drain()
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
            self.finished(task, "failed", broken)
            task._fail(broken)
        if wake:
            self.wake.set()

    def worker_ready(self, worker: Worker, resource: R) -> None:
        """A worker created its resource."""
        worker.resource = resource
        with self._lock:
            self._ready += 1
            self._failing_since = None
            recovered = self._broken
            if recovered:
                self._broken = False
                self.accepting = not (self.closing or self.killed)
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
        except Exception as error:
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
            if self.closing or self.killed:
                return
            self.closing = True
            self.accepting = False
            pending = self._pending
        self.log(logging.INFO, Event.MANAGER_STOPPING, pending_tasks=pending)
        self.wake.set()

    def cancel_queued(self) -> int:
        """Stop gracefully, but cancel every queued task first; return how many were cancelled.

        Running tasks finish as usual (`Executor.shutdown(cancel_futures=True)`).
        """
        self.begin_stop()
        with self._lock:
            queued = self.queue.drain()
            self._pending -= len(queued)
        cancelled = self._cancel_drained(queued)
        self.wake.set()  # the supervisor checks whether anything is left to wait for
        return cancelled

    def _cancel_drained(self, tasks: list[TaskRecord[Any]]) -> int:
        """End tasks taken out of the queues as cancelled; return how many were still pending."""
        cancelled = 0
        for task in tasks:
            release(task)
            cancelled += task._abandon()
        if self.observers.task_finished:
            for task in tasks:
                self.finished(task, "cancelled", None)
        return cancelled

    def kill(self) -> KillReport:
        """Refuse new work, cancel queued tasks, abandon running ones, tear everything down."""
        with self._lock:
            if self.killed or self._stopped:
                return KillReport(cancelled_tasks=0, abandoned_tasks=0)
            self.killed = True
            self.closing = True
            self.accepting = False
            self.shutdown.set()
            queued = self.queue.drain()
            self._pending = 0
            running = [w.current for w in self.workers if w.current is not None]
            live = len(self.workers)
        cancelled = self._cancel_drained(queued)
        for task in running:  # before waking cooperative tasks, so none can finish first
            task._abandon()
            self.runtime.interrupt(task)
        self.killed_signal.set()
        abandoned = 0
        for task in running:
            if task.cancelled():  # not if it had already finished when kill() looked
                abandoned += 1
                self.finished(task, "cancelled", None)
                self.log(
                    logging.WARNING,
                    Event.TASK_ABANDONED,
                    task_id=task.task_id,
                    worker_id=task.worker_id,
                    attempt=task.attempt,
                )
        self.queue.send(EXIT, live)
        self.wake.set()
        self.log(
            logging.WARNING,
            Event.MANAGER_KILLED,
            cancelled_tasks=cancelled,
            abandoned_tasks=abandoned,
        )
        return KillReport(cancelled_tasks=cancelled, abandoned_tasks=abandoned)

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
            self._stopped = True
        if not self.killed:
            self.log(logging.INFO, Event.MANAGER_STOPPED)
        if self.observers.manager_stopped:
            self.observers.emit("tasker_manager_stopped", killed=self.killed)
        self.terminated.set()

    # -------------------------------------------------------------- snapshots

    @property
    def state(self) -> ManagerState:
        """The lifecycle state."""
        if self.killed:
            return ManagerState.KILLED
        if self._stopped:
            return ManagerState.STOPPED
        if self.closing:
            return ManagerState.STOPPING
        if self._broken:
            return ManagerState.BROKEN
        return ManagerState.RUNNING

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
        with suppress(Exception):  # a broken logger must not break the engine
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
