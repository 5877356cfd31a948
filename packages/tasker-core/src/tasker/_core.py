"""The engine behind `TaskManager`: lifecycle, submission, failures, scaling and shutdown.

Locking: one lock (`Core._lock`) guards the lifecycle flags, the pending-task count and the
worker list. The queues themselves are lock-free deques (see `_queue`). Nothing slow (user
code, `on_create`/`on_destroy`, collectors, loggers) ever runs under the lock.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from typing import Any, Generic, TypeVar

from tasker._config import Config
from tasker._fanout import CollectorFanout
from tasker._outcome import decide_failure
from tasker._pool import ResourcePool
from tasker._queue import EXIT, TaskQueue
from tasker._task import TaskFuture, call_in_task
from tasker._worker import Startup, Worker, mark_owner, thread_owner, worker_main
from tasker.errors import (
    ManagerBrokenError,
    ManagerClosedError,
    ResourceCreationError,
)
from tasker.events import Event
from tasker.metrics import COMPLETED, FAILED, RETRIED, InMemoryCollector, TaskMetrics
from tasker.scaling import ScalingSnapshot
from tasker.stats import KillReport, ManagerState, TaskStats

__all__ = ["Core"]

R = TypeVar("R")
T = TypeVar("T")

_perf = time.perf_counter


class Core(Generic[R]):
    """Shared state and decisions of one manager. Workers and the supervisor call into it."""

    def __init__(self, config: Config[R]) -> None:
        self.config = config
        self.logger = config.logger
        self.queue = TaskQueue()
        # the built-in collector is fed directly (one call per attempt); the user's collectors,
        # if any, through a fan-out that isolates their failures
        self.metrics_collector = InMemoryCollector()
        self.extra: CollectorFanout | None = (
            CollectorFanout(config.collectors, config.logger) if config.collectors else None
        )
        self.pool: ResourcePool[R] = ResourcePool(
            config.pool_size, config.on_create, self.destroy_resource
        )
        self._lock = threading.Lock()
        self._task_ids = itertools.count(1)
        self._worker_ids = itertools.count(1)
        self._workers: list[Worker] = []
        self._pending = 0  # submitted to the queues and not yet ended
        self._ready = 0  # workers holding a resource
        self._retire_quota = 0  # idle burst workers asked to leave
        # lifecycle flags; `accepting` is their fast summary for the submit path
        self.accepting = False
        self.killed = False
        self._closing = False
        self._broken = False
        self._stopped = False
        self._failing_since: float | None = None
        self._last_create_error: BaseException | None = None
        self.shutdown = threading.Event()  # workers must leave: drained, killed or failed build
        self._killed_event = threading.Event()
        self._terminated = threading.Event()
        self._wake = threading.Event()
        self._supervisor: threading.Thread | None = None

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Fill the pool, start the base workers and the supervisor; raise if any part fails."""
        cfg = self.config
        try:
            self.pool.fill()
        except ResourceCreationError:
            self.pool.close()
            raise
        startups = [self._spawn(burst=False, startup=Startup()) for _ in range(cfg.workers)]
        failures = [error for s in startups if (error := s.wait()) is not None]
        if failures:
            self._abort_start()
            raise ResourceCreationError(
                f"on_create failed for {len(failures)} of {cfg.workers} base workers while "
                f"building manager {cfg.name!r}: {failures[0]!r}"
            ) from failures[0]
        with self._lock:
            self.accepting = True
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"{cfg.name}-supervisor", daemon=True
        )
        self._supervisor.start()
        self.log(
            logging.INFO,
            Event.MANAGER_STARTED,
            workers=cfg.workers,
            max_workers=cfg.max_workers,
            pool_size=cfg.pool_size,
        )

    def _abort_start(self) -> None:
        with self._lock:
            self.shutdown.set()
            workers = list(self._workers)
        self.queue.send(EXIT, len(workers))
        for worker in workers:
            if worker.handle is not None:
                worker.handle.join()
        self.pool.close()
        with self._lock:
            self._stopped = True
        self._terminated.set()

    def _spawn(self, *, burst: bool, startup: Startup | None = None) -> Startup:
        """Start one worker thread (the caller holds no lock). Returns its startup report."""
        startup = startup if startup is not None else Startup()
        worker = Worker(next(self._worker_ids), burst=burst)
        with self._lock:
            self._workers.append(worker)
        worker.handle = self.config.executor.start_worker(
            lambda: worker_main(self, worker, startup),
            name=f"{self.config.name}-worker-{worker.worker_id}",
        )
        return startup

    # ------------------------------------------------------------- submission

    def submit(self, fn: Callable[[R], T], *, priority: bool, once: bool) -> TaskFuture[T]:
        """Queue a task; raise at once if the manager does not accept work."""
        if not callable(fn):
            raise TypeError(f"task must be callable, got {type(fn).__name__}")
        if not self.accepting:
            raise self._refusal()
        task: TaskFuture[T] = TaskFuture(
            self, fn, next(self._task_ids), priority=priority, once=once
        )
        self.record_arrival(task)
        with self._lock:
            if not self.accepting:
                raise self._refusal()
            self._pending += 1
            self.queue.put(task)
        return task

    def _refusal(self) -> RuntimeError:
        if self._broken and not (self._closing or self.killed):
            error = ManagerBrokenError(
                f"manager {self.config.name!r} is broken: no worker could create its resource "
                f"for {self.config.backoff.broken_after} s; last error: "
                f"{self._last_create_error!r}"
            )
            error.__cause__ = self._last_create_error
            return error
        state = "killed" if self.killed else "stopped"
        return ManagerClosedError(f"cannot submit tasks: manager {self.config.name!r} is {state}")

    def discard(self, task: TaskFuture[Any]) -> None:
        """A queued task was cancelled by its caller: take it out of its queue."""
        if self.queue.remove(task):
            self.task_done()

    def task_done(self) -> None:
        """One pending task ended; wake the supervisor when a stop was waiting for it."""
        with self._lock:
            self._pending -= 1
            if self._pending or not self._closing:
                return
        self._wake.set()

    def guard_callback(self, fn: Callable[[Future[T]], object]) -> Callable[[Future[T]], None]:
        """Wrap a done-callback so that an exception it raises is logged, never propagated."""

        def guarded(future: Future[T]) -> None:
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

    # --------------------------------------------------------------- failures

    def record_arrival(self, task: TaskFuture[Any]) -> None:
        """Tell every collector a task arrived."""
        self.metrics_collector.record_arrival(task)
        if self.extra is not None:
            self.extra.record_arrival(task)

    def record_attempt(
        self,
        task: TaskFuture[Any],
        wait_time: float,
        elapsed: float,
        outcome: int,
        error: BaseException | None = None,
    ) -> None:
        """Tell every collector how an attempt ended (`outcome` from `tasker.metrics`).

        The user's collectors heard `record_start` when the attempt began; the built-in one
        takes the wait and the run together, in one lock round trip.
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

    def attempt_failed(
        self,
        worker: Worker,
        task: TaskFuture[Any],
        error: BaseException,
        wait_time: float,
        elapsed: float,
    ) -> bool:
        """Settle a failed attempt on a worker; return `True` if the worker must be replaced."""
        if self.killed:  # kill() already told the caller; the worker just leaves
            task.abandon()
            return False
        cfg = self.config
        decision = decide_failure(
            task,
            error,
            health_check=cfg.health_check,
            max_retries=cfg.max_retries,
            logger=self.logger,
        )
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
        final = decision.error if decision.error is not None else error
        self.record_attempt(task, wait_time, elapsed, FAILED, final)
        self.log(
            logging.DEBUG,
            Event.TASK_FAILED,
            task_id=task.task_id,
            worker_id=worker.worker_id,
            attempt=task.attempt,
            error=final,
        )
        task.fail(final)
        self.task_done()
        return decision.replace_worker

    def _requeue(
        self, task: TaskFuture[Any], error: BaseException, wait_time: float, elapsed: float
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
        self.log(
            logging.WARNING,
            Event.TASK_RETRIED,
            task_id=task.task_id,
            attempt=task.attempt,
            max_retries=self.config.max_retries,
            error=error,
        )
        return True

    # --------------------------------------------------------------- resources

    def destroy_resource(self, resource: R) -> None:
        """Call `on_destroy`; an exception is logged, never raised."""
        on_destroy = self.config.on_destroy
        if on_destroy is None:
            return
        try:
            on_destroy(resource)
        except Exception as error:
            self.log(logging.ERROR, Event.RESOURCE_DESTROY_FAILED, error=error)

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
            wake = self._closing and not self._pending
        self.log(logging.ERROR, Event.MANAGER_BROKEN, failed_tasks=len(doomed), error=error)
        for task in doomed:
            broken = ManagerBrokenError(
                f"task {task.task_id} cannot run: manager {self.config.name!r} is broken "
                f"(no worker could create its resource): {error!r}"
            )
            broken.__cause__ = error
            task.fail(broken)
        if wake:
            self._wake.set()

    def worker_ready(self, worker: Worker) -> None:
        """A worker created its resource."""
        with self._lock:
            self._ready += 1
            self._failing_since = None
            recovered = self._broken
            if recovered:
                self._broken = False
                self.accepting = not (self._closing or self.killed)
        if recovered:
            self.log(logging.INFO, Event.MANAGER_RECOVERED, worker_id=worker.worker_id)

    def worker_lost_resource(self) -> None:
        """A worker destroyed (or is about to destroy) its resource."""
        with self._lock:
            self._ready -= 1

    def worker_exited(self, worker: Worker) -> None:
        """A worker's loop returned."""
        with self._lock:
            self._workers.remove(worker)

    def try_retire(self, worker: Worker) -> bool:
        """An idle burst worker asks whether it should leave."""
        if not worker.burst:
            return False
        with self._lock:
            if self._retire_quota <= 0 or self.shutdown.is_set():
                return False
            self._retire_quota -= 1
            return True

    def next_worker_id(self) -> int:
        """A fresh worker id (a replaced worker gets a new one)."""
        return next(self._worker_ids)

    def wait_killed(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; return early, `True`, if the manager is killed."""
        return self._killed_event.wait(timeout)

    # ---------------------------------------------------------------- run_task

    def run_task(self, fn: Callable[[R], T], *, once: bool) -> T:
        """Run `fn` now in the calling thread on a pooled or temporary resource."""
        if not callable(fn):
            raise TypeError(f"task must be callable, got {type(fn).__name__}")
        if self._closing or self.killed:
            raise self._refusal()
        cfg = self.config
        task: TaskFuture[T] = TaskFuture(self, fn, next(self._task_ids), priority=False, once=once)
        task.set_running_or_notify_cancel()
        self.record_arrival(task)
        while True:
            try:
                resource, pooled = self.pool.borrow()
            except ResourceCreationError as error:
                self.record_attempt(task, 0.0, 0.0, FAILED, error)
                raise
            task.attempt += 1
            task.resource = resource
            if self.extra is not None:
                self.extra.record_start(task, 0.0)
            start = _perf()
            try:
                result = task.context.run(call_in_task, task, resource)
            except BaseException as error:
                elapsed = _perf() - start
                decision = decide_failure(
                    task,
                    error,
                    health_check=cfg.health_check,
                    max_retries=cfg.max_retries,
                    logger=self.logger,
                )
                self.pool.give_back(resource, pooled, healthy=not decision.replace_worker)
                if decision.retry and not self.killed:
                    self.record_attempt(task, 0.0, elapsed, RETRIED, error)
                    self.log(
                        logging.WARNING,
                        Event.TASK_RETRIED,
                        task_id=task.task_id,
                        attempt=task.attempt,
                        max_retries=cfg.max_retries,
                        error=error,
                    )
                    continue
                final = decision.error if decision.error is not None else error
                self.record_attempt(task, 0.0, elapsed, FAILED, final)
                if final is error:
                    raise
                raise final from error
            elapsed = _perf() - start
            self.pool.give_back(resource, pooled, healthy=True)
            self.record_attempt(task, 0.0, elapsed, COMPLETED)
            return result

    # ----------------------------------------------------------------- scaling

    def _supervise(self) -> None:
        mark_owner(self)
        policy = self.config.policy
        while True:
            self._wake.wait(policy.interval)
            self._wake.clear()
            if self.killed:
                break
            if self._closing:
                with self._lock:
                    drained = not self._pending
                if drained:
                    break
            self._scale()
        self._finish()

    def _scale(self) -> None:
        cfg = self.config
        metrics = self.metrics_collector.metrics()
        workers = list(self._workers)
        snapshot = ScalingSnapshot(
            now=time.monotonic(),
            base_workers=cfg.workers,
            max_workers=cfg.max_workers,
            workers=len(workers),
            busy_workers=sum(1 for w in workers if w.current is not None),
            queued_tasks=self.queue.main_depth + self.queue.priority_depth,
            arrival_rate=metrics.task_arrival_rate,
            completion_rate=metrics.task_completion_rate,
            average_execution_time=metrics.average_execution_time,
        )
        try:
            target = int(cfg.policy.target_workers(snapshot))
        except Exception as error:
            self.log(logging.ERROR, Event.POLICY_FAILED, policy=repr(cfg.policy), error=error)
            return
        target = max(cfg.workers, min(cfg.max_workers, target))
        with self._lock:
            if self.shutdown.is_set():
                return
            live = len(self._workers)
            if self._closing:  # winding down: idle bursts may leave, none are added
                target = min(target, live)
            grow = target - live
            previous_quota = self._retire_quota
            self._retire_quota = max(0, -grow)
        if grow > 0:
            self.log(logging.INFO, Event.SCALED_UP, workers=live, target=target)
            for _ in range(grow):
                self._spawn(burst=True)
        elif grow < 0 and self._retire_quota != previous_quota:
            self.log(logging.INFO, Event.SCALED_DOWN, workers=live, target=target)

    # ---------------------------------------------------------------- shutdown

    def begin_stop(self) -> None:
        """Refuse new work; the supervisor finishes the shutdown once everything has drained."""
        with self._lock:
            if self._closing or self.killed:
                return
            self._closing = True
            self.accepting = False
            pending = self._pending
        self.log(logging.INFO, Event.MANAGER_STOPPING, pending_tasks=pending)
        self._wake.set()

    def kill(self) -> KillReport:
        """Refuse new work, cancel queued tasks, abandon running ones, tear everything down."""
        with self._lock:
            if self.killed or self._stopped:
                return KillReport(cancelled_tasks=0, abandoned_tasks=0)
            self.killed = True
            self._closing = True
            self.accepting = False
            self.shutdown.set()
            queued = self.queue.drain()
            self._pending = 0
            running = [w.current for w in self._workers if w.current is not None]
            live = len(self._workers)
        cancelled = sum(1 for task in queued if task.abandon())
        for task in running:  # before waking cooperative tasks, so none can finish first
            task.abandon()
        self._killed_event.set()
        abandoned = 0
        for task in running:
            if task.cancelled():  # not if it had already finished when kill() looked
                abandoned += 1
                self.log(
                    logging.WARNING,
                    Event.TASK_ABANDONED,
                    task_id=task.task_id,
                    worker_id=task.worker_id,
                    attempt=task.attempt,
                )
        self.queue.send(EXIT, live)
        self._wake.set()
        self.log(
            logging.WARNING,
            Event.MANAGER_KILLED,
            cancelled_tasks=cancelled,
            abandoned_tasks=abandoned,
        )
        return KillReport(cancelled_tasks=cancelled, abandoned_tasks=abandoned)

    def _finish(self) -> None:
        """Supervisor's last act: release the workers, join them, empty the pool."""
        with self._lock:
            self.shutdown.set()
            workers = list(self._workers)
        # one EXIT per worker; after kill() this repeats its tokens, which is harmless and
        # reaches a burst worker the scaler started while kill() was taking its snapshot
        self.queue.send(EXIT, len(workers))
        self.pool.close()
        for worker in workers:
            if worker.handle is not None:
                worker.handle.join()
        with self._lock:
            self._stopped = True
        if not self.killed:
            self.log(logging.INFO, Event.MANAGER_STOPPED)
        self._terminated.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every worker has exited and every resource is destroyed."""
        if not self._terminated.wait(timeout):
            return False
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout)
        return True

    def in_own_thread(self) -> bool:
        """Whether the caller is one of this manager's workers or its supervisor."""
        return thread_owner() is self

    # -------------------------------------------------------------- snapshots

    @property
    def state(self) -> ManagerState:
        """The lifecycle state."""
        if self.killed:
            return ManagerState.KILLED
        if self._stopped:
            return ManagerState.STOPPED
        if self._closing:
            return ManagerState.STOPPING
        if self._broken:
            return ManagerState.BROKEN
        return ManagerState.RUNNING

    def stats(self) -> TaskStats:
        """A live snapshot of workers, queues and pool."""
        workers = list(self._workers)
        bursts = sum(1 for w in workers if w.burst)
        return TaskStats(
            base_workers=self.config.workers,
            active_workers=len(workers),
            burst_workers=bursts,
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
