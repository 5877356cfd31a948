"""Where a manager's events go: built-in metrics, the user's collectors, observer plugins, the log.

The core decides; it then tells `Telemetry` what happened, and `Telemetry` fans the event out.
Every path is guarded: a collector, an observer or a logger that raises is contained (and
logged, where the logger still works), so telemetry can never fail a task, a worker or a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar

from tasker._fanout import CollectorFanout
from tasker._task import TaskState
from tasker.events import Event
from tasker.metrics import COMPLETED as METRIC_COMPLETED
from tasker.metrics import FAILED as METRIC_FAILED
from tasker.metrics import InMemoryCollector

if TYPE_CHECKING:
    from tasker._config import Config
    from tasker._task import TaskRecord

__all__ = ["Telemetry"]

T = TypeVar("T")

COMPLETED = TaskState.COMPLETED
CANCELLED = TaskState.CANCELLED
TIMED_OUT = TaskState.TIMED_OUT


class Telemetry:
    """The one guarded path every event of one manager takes."""

    __slots__ = ("_config", "collector", "counted_only", "extra", "logger", "name", "observers")

    def __init__(self, config: Config[Any]) -> None:
        self._config = config
        self.name = config.name
        self.logger = config.logger
        # the built-in collector is fed directly (one call per attempt); the user's collectors,
        # if any, through a fan-out that isolates their failures
        self.collector = InMemoryCollector()
        self.extra: CollectorFanout | None = (
            CollectorFanout(config.collectors, self.log) if config.collectors else None
        )
        self.observers = config.plugins.observers(config.name, self.log)
        # a completed attempt is only counted, by the built-in collector: no other collector
        # and no observer hears of it (the engine's fast path, see `task_finished`)
        self.counted_only = self.extra is None and not self.observers.task_finished

    def log(self, level: int, event: str, /, **fields: object) -> None:
        """Log through the configured logger, tagged with the manager's name; never raise."""
        with suppress(BaseException):  # a broken logger must not break the engine
            self.logger.log(level, event, manager=self.name, **fields)

    def bind(self, manager: object) -> None:
        """Hand the built manager to the collectors and the logger that ask for it (`bind`)."""
        for part in (*self._config.collectors, self.logger):
            bind = getattr(part, "bind", None)
            if not callable(bind):
                continue
            try:
                bind(manager)
            except Exception as error:  # a faulty adapter must not fail build()
                self.log(logging.ERROR, Event.BIND_FAILED, part=type(part).__name__, error=error)

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

    # ------------------------------------------------------------------- tasks

    def task_queued(self, task: TaskRecord[Any]) -> None:
        """A task was accepted (the built-in collector counted it under the core's lock)."""
        if self.extra is not None:
            self.extra.record_arrival(task)
        if self.observers.task_queued:
            self.observers.emit("tasker_task_queued", task=task)

    def arrival(self, task: TaskRecord[Any]) -> None:
        """Tell every collector a task arrived."""
        self.collector.record_arrival(task)
        if self.extra is not None:
            self.extra.record_arrival(task)

    def attempt_started(self, task: TaskRecord[Any], worker_id: int | None, wait: float) -> None:
        """An attempt began, `wait` seconds after the task was queued."""
        if self.extra is not None:
            self.extra.record_start(task, wait)
        if self.observers.task_started:
            self.observers.emit("tasker_task_started", task=task, worker_id=worker_id)

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
        self.collector.record_attempt(wait_time, elapsed, outcome)
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

    def task_finished(
        self,
        task: TaskRecord[Any],
        state: TaskState,
        value: Any,
        wait: float,
        elapsed: float,
        *,
        record: bool,
    ) -> None:
        """A task reached its terminal `state` (`value`: its result or error).

        Metrics first, then the log and the observers. `record=False` leaves out the attempt
        metrics (no attempt ran).
        """
        if not record or state is CANCELLED:
            pass
        elif state is COMPLETED:
            if self.extra is None:
                self.collector.record_attempt(wait, elapsed, METRIC_COMPLETED)
            else:
                self.record_attempt(task, wait, elapsed, METRIC_COMPLETED)
        else:
            self.record_attempt(task, wait, elapsed, METRIC_FAILED, value)
            if state is TIMED_OUT:
                self.log_attempt(
                    logging.WARNING, Event.TASK_TIMED_OUT, task, elapsed, timeout=task.timeout
                )
            else:
                self.log_attempt(logging.DEBUG, Event.TASK_FAILED, task, elapsed, error=value)
        if self.observers.task_finished:
            error = None if state is COMPLETED or state is CANCELLED else value
            self.observers.emit("tasker_task_finished", task=task, outcome=state, error=error)

    def task_retried(
        self, task: TaskRecord[Any], error: BaseException, elapsed: float, max_retries: int
    ) -> None:
        """A failed attempt is followed by another (its metrics were recorded already)."""
        if self.observers.task_retried:
            self.observers.emit("tasker_task_retried", task=task, error=error)
        self.log_attempt(
            logging.WARNING, Event.TASK_RETRIED, task, elapsed, max_retries=max_retries, error=error
        )

    def task_rejected(self, task: TaskRecord[Any], limit: int | None) -> None:
        """A submission found the queues full and would not wait (the task was never queued)."""
        self.collector.record_rejection(task)
        if self.extra is not None:
            self.extra.record_rejection(task)
        self.log(
            logging.DEBUG,
            Event.TASK_REJECTED,
            task_id=task.task_id,
            queue="priority" if task.priority else "main",
            queue_limit=limit,
        )

    def task_shed(self, task: TaskRecord[Any], waited: float, max_wait: float) -> None:
        """A task waited longer than allowed: it fails without running."""
        self.collector.record_shed(task, waited)
        if self.extra is not None:
            self.extra.record_shed(task, waited)
        self.log(
            logging.WARNING,
            Event.TASK_SHED,
            task_id=task.task_id,
            queue="priority" if task.priority else "main",
            wait_time=waited,
            max_queue_wait=max_wait,
        )

    def task_abandoned(self, task: TaskRecord[Any]) -> None:
        """`kill()` ended a running task; its attempt goes on unattended."""
        self.log(
            logging.WARNING,
            Event.TASK_ABANDONED,
            task_id=task.task_id,
            worker_id=task.worker_id,
            attempt=task.attempt,
        )

    def log_attempt(
        self, level: int, event: str, task: TaskRecord[Any], duration: float, **fields: object
    ) -> None:
        """Log how an attempt ended, with the fields every attempt event carries."""
        self.log(
            level,
            event,
            task_id=task.task_id,
            worker_id=task.worker_id,
            attempt=task.attempt,
            queue="priority" if task.priority else "main",
            duration=duration,
            **fields,
        )

    # ----------------------------------------------------------------- workers

    def worker_started(self, worker_id: int, burst: bool) -> None:
        """A worker holds its resource and takes tasks."""
        self.log(logging.INFO, Event.WORKER_STARTED, worker_id=worker_id, burst=burst)
        if self.observers.worker_started:
            self.observers.emit("tasker_worker_started", worker_id=worker_id, burst=burst)

    def worker_unhealthy(self, worker_id: int, task: TaskRecord[Any], error: BaseException) -> None:
        """A failed attempt left the worker's resource unhealthy: it will be replaced."""
        self.log(
            logging.WARNING,
            Event.WORKER_UNHEALTHY,
            worker_id=worker_id,
            task_id=task.task_id,
            attempt=task.attempt,
            error=error,
        )

    def worker_replaced(self, worker_id: int, replaced_worker_id: int) -> None:
        """A worker starts afresh under a new id."""
        self.log(
            logging.WARNING,
            Event.WORKER_REPLACED,
            worker_id=worker_id,
            replaced_worker_id=replaced_worker_id,
        )
        if self.observers.worker_replaced:
            self.observers.emit(
                "tasker_worker_replaced", worker_id=worker_id, replaced_worker_id=replaced_worker_id
            )

    def worker_stopped(self, worker_id: int) -> None:
        """A worker's loop returned."""
        self.log(logging.INFO, Event.WORKER_STOPPED, worker_id=worker_id)
        if self.observers.worker_stopped:
            self.observers.emit("tasker_worker_stopped", worker_id=worker_id)

    def create_failed(self, worker_id: int, failures: int, error: BaseException) -> None:
        """A worker's `on_create` raised."""
        self.log(
            logging.ERROR,
            Event.RESOURCE_CREATE_FAILED,
            worker_id=worker_id,
            failures=failures,
            error=error,
        )

    def destroy_failed(self, worker_id: int | None, error: BaseException) -> None:
        """`on_destroy` raised (it is never raised)."""
        self.log(logging.ERROR, Event.RESOURCE_DESTROY_FAILED, worker_id=worker_id, error=error)

    def scaled(self, workers: int, target: int) -> None:
        """The scaler asked for more (`target > workers`) or fewer workers."""
        if target > workers:
            self.log(logging.INFO, Event.SCALED_UP, workers=workers, target=target)
            if self.observers.scaled_up:
                self.observers.emit("tasker_scaled_up", workers=workers, target=target)
        else:
            self.log(logging.INFO, Event.SCALED_DOWN, workers=workers, target=target)
            if self.observers.scaled_down:
                self.observers.emit("tasker_scaled_down", workers=workers, target=target)

    # ----------------------------------------------------------------- manager

    def manager_started(self) -> None:
        """Every base worker is up."""
        cfg = self._config
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

    def manager_stopped(self, killed: bool) -> None:
        """Every worker has exited and every resource is destroyed."""
        if not killed:
            self.log(logging.INFO, Event.MANAGER_STOPPED)
        if self.observers.manager_stopped:
            self.observers.emit("tasker_manager_stopped", killed=killed)
