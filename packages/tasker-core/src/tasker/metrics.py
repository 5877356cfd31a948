"""Task metrics: the collector protocol, the snapshot type and the built-in collector.

The in-memory collector uses bounded memory whatever the number of tasks: durations go into
fixed-size [`QuantileSketch`][tasker.sketch.QuantileSketch]es (1 % relative error) and rates are
computed over a sliding window of recent counts, never over the manager's whole lifetime.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from tasker import _validate as validate
from tasker.sketch import QuantileSketch

__all__ = [
    "COMPLETED",
    "FAILED",
    "RETRIED",
    "InMemoryCollector",
    "MetricsCollector",
    "RecentActivity",
    "TaskInfo",
    "TaskMetrics",
]

_BATCH = 256  # events buffered before they are folded into the sketches and totals
_BACKLOG = 8 * _BATCH  # events buffered at most while a fold is under way (about)
_T = TypeVar("_T")
# (time, arrived, finished, succeeded, their execution time, attempts that raised)
_Totals = tuple[float, int, int, int, float, int]

COMPLETED = 0
"""`record_attempt` outcome: the task succeeded."""
FAILED = 1
"""`record_attempt` outcome: the task failed for good."""
RETRIED = 2
"""`record_attempt` outcome: the attempt failed and the task was queued again."""


@runtime_checkable
class TaskInfo(Protocol):
    """**Protocol**: what collectors and loggers may read about a task."""

    @property
    def task_id(self) -> int:
        """Unique id of the task within its manager."""
        ...

    @property
    def priority(self) -> bool:
        """Whether the task was submitted to the priority queue."""
        ...

    @property
    def once(self) -> bool:
        """Whether the task must never run twice."""
        ...

    @property
    def attempt(self) -> int:
        """How many attempts have started (1 during the first run)."""
        ...


@runtime_checkable
class MetricsCollector(Protocol):
    """**Protocol**: receives every task lifecycle event, to aggregate or export.

    Methods are called from worker threads, concurrently: implementations must be thread-safe,
    fast (they sit on every task's path) and must not raise (an exception is logged and dropped).
    Durations are in seconds.

    A collector may also define `bind(manager)`: it is then called once, when the manager it
    serves is built, with the manager itself (its `name`, `stats()`, ...), so a collector made
    by name can label its data or observe the manager's live state.

    Two more methods are optional, called only on the collectors that define them:
    `record_rejection(task)` when a submission finds the queue full (`with_queue_limit`) and
    does not wait (the task was never queued), and `record_shed(task, wait_time)` when a task
    is shed after waiting longer than `with_max_queue_wait` allows (it fails without running;
    `record_failure` is not called for it).
    """

    def record_arrival(self, task: TaskInfo) -> None:
        """A task was submitted."""

    def record_start(self, task: TaskInfo, wait_time: float) -> None:
        """An attempt started after waiting `wait_time` seconds in the queue."""

    def record_completion(self, task: TaskInfo, execution_time: float) -> None:
        """The task succeeded; its last attempt ran for `execution_time` seconds."""

    def record_failure(self, task: TaskInfo, execution_time: float, error: BaseException) -> None:
        """The task failed for good with `error` (its caller gets an exception)."""

    def record_retry(self, task: TaskInfo, error: BaseException) -> None:
        """An attempt failed on an unhealthy worker and the task was queued again."""


@dataclass(frozen=True, slots=True)
class TaskMetrics:
    """A snapshot of task performance. Durations are in seconds, rates in tasks per second.

    Rates are measured over the collector's recent window (one second by default), so they fall
    back to zero shortly after the load stops. Percentiles are within 1 % of the exact value.
    Durations are `0.0` until a task has been measured. `total_tasks_rejected` counts
    submissions refused by a full queue (never queued, so not among the arrived);
    `total_tasks_shed` counts tasks failed with `TaskExpiredError` for waiting too long (not
    among the failed, which ran).
    """

    average_execution_time: float
    min_execution_time: float
    max_execution_time: float
    p50_execution_time: float
    p95_execution_time: float
    p99_execution_time: float
    average_wait_time: float
    p50_wait_time: float
    p95_wait_time: float
    p99_wait_time: float
    task_arrival_rate: float
    task_completion_rate: float
    total_tasks_arrived: int
    total_tasks_completed: int
    total_tasks_failed: int
    total_tasks_retried: int
    success_rate: float
    failure_rate: float
    total_tasks_rejected: int = 0
    total_tasks_shed: int = 0


@dataclass(frozen=True, slots=True)
class RecentActivity:
    """What happened over a recent window (see `InMemoryCollector.recent`).

    Attributes:
        arrival_rate: submissions per second.
        completion_rate: tasks finished (succeeded or failed for good) per second.
        execution_time: the mean run time, in seconds, of the attempts that succeeded
            (0 when none did).
        error_ratio: the share of the attempts that ended and raised, failed for good or
            retried (0 when none ended).
    """

    arrival_rate: float
    completion_rate: float
    execution_time: float
    error_ratio: float


_IDLE = RecentActivity(0.0, 0.0, 0.0, 0.0)


class InMemoryCollector:
    """The default collector: aggregates in bounded memory and answers `metrics()` cheaply.

    Recording takes no lock: each event is one `list.append`, which is atomic (with or without
    the GIL), and the buffered events are folded into the sketches and the totals in batches,
    by whichever recorder fills a buffer and finds no fold under way (or by a query).

    Args:
        window: length in seconds of the sliding window over which arrival and completion rates
            are measured.
        relative_accuracy: the percentile error bound of the duration sketches.
        clock: a monotonic clock returning seconds (tests inject a fake one).
    """

    __slots__ = (
        "_arrivals",
        "_arrived",
        "_clock",
        "_completed",
        "_completions",
        "_exec",
        "_exec_sum",
        "_failed",
        "_failures",
        "_limit",
        "_lock",
        "_rejected",
        "_resolution",
        "_retried",
        "_retries",
        "_samples",
        "_shed",
        "_success_sum",
        "_wait",
        "_wait_sum",
        "_waits",
        "_window",
    )

    def __init__(
        self,
        *,
        window: float = 1.0,
        relative_accuracy: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        validate.seconds("window", window)
        # held to fold, and to read the totals; never to record
        self._lock = threading.Lock()
        self._clock = clock
        self._window = window
        self._resolution = window / 10
        self._exec = QuantileSketch(relative_accuracy)
        self._wait = QuantileSketch(relative_accuracy)
        # what the buffers held, once folded
        self._exec_sum = 0.0
        self._success_sum = 0.0  # execution time of the successes alone
        self._wait_sum = 0.0
        self._arrived = 0
        self._completed = 0
        self._failed = 0
        self._retried = 0
        self._rejected = 0  # rare events, counted under the lock
        self._shed = 0
        # events not folded yet, a batch or so of each: recorders only ever append, and
        # a fold removes the items it has read from the front, so no append is ever lost
        self._waits: list[float] = []
        self._completions: list[float] = []  # execution times of successes
        self._failures: list[float] = []  # execution times of failures
        self._retries: list[None] = []
        self._arrivals: list[None] = []
        self._limit = _BATCH  # the buffer length at which a recorder folds
        # the running totals every `resolution` seconds at most: the sliding window
        self._samples: deque[_Totals] = deque([(clock(), 0, 0, 0, 0.0, 0)], maxlen=12)

    @property
    def window(self) -> float:
        """The length, in seconds, of the window rates are measured over."""
        return self._window

    def record_arrival(self, task: TaskInfo) -> None:
        """Count one submitted task."""
        arrivals = self._arrivals
        arrivals.append(None)
        if len(arrivals) >= self._limit:
            self._fold_unless_busy()

    def record_attempt(self, wait_time: float, execution_time: float, outcome: int) -> None:
        """Record a whole attempt at once: its wait, its run and how it ended.

        `outcome` is `COMPLETED`, `FAILED` or `RETRIED`. Equivalent to `record_start` followed by
        `record_completion`, `record_failure` or `record_retry`, in one call: the manager's hot
        path uses it.
        """
        waits = self._waits
        waits.append(wait_time)
        if outcome == COMPLETED:
            self._completions.append(execution_time)
        elif outcome == FAILED:
            self._failures.append(execution_time)
        else:
            self._retries.append(None)
        # every attempt adds one wait: this bounds the other buffers too
        if len(waits) >= self._limit:
            self._fold_unless_busy()

    def record_rejection(self, task: TaskInfo) -> None:
        """Count one submission refused by a full queue."""
        with self._lock:
            self._rejected += 1

    def record_shed(self, task: TaskInfo, wait_time: float) -> None:
        """Count one task shed for waiting longer than allowed."""
        with self._lock:
            self._shed += 1

    def record_start(self, task: TaskInfo, wait_time: float) -> None:
        """Record how long an attempt waited in the queue."""
        self._buffer(self._waits, wait_time)

    def record_completion(self, task: TaskInfo, execution_time: float) -> None:
        """Count one success and record its execution time."""
        self._buffer(self._completions, execution_time)

    def record_failure(self, task: TaskInfo, execution_time: float, error: BaseException) -> None:
        """Count one failure and record its execution time."""
        self._buffer(self._failures, execution_time)

    def record_retry(self, task: TaskInfo, error: BaseException) -> None:
        """Count one retry."""
        self._buffer(self._retries, None)

    def _buffer(self, buffer: list[Any], event: Any) -> None:
        buffer.append(event)
        if len(buffer) >= self._limit:
            self._fold_unless_busy()

    def _fold_unless_busy(self) -> None:
        """Fold, unless another thread is folding or reading: the next fold drains the rest.

        While busy, the buffers may grow a batch at a time, so that recorders do not all try
        again on every event; past `_BACKLOG`, the fold under way is stalled (its thread is
        waiting for the GIL) and the recorder waits for it rather than let the buffers grow.
        """
        lock = self._lock
        if not lock.acquire(blocking=False):
            if self._limit < _BACKLOG:
                self._limit += _BATCH  # a lost update only makes the next try come sooner
                return
            lock.acquire()
        try:
            self._fold()
        finally:
            lock.release()

    def _fold(self) -> None:
        """Move the buffered events into the sketches and the totals (lock held)."""
        waits = _drain(self._waits)
        if waits:
            self._wait.add_many(waits)
            self._wait_sum += sum(waits)
        completions = _drain(self._completions)
        failures = _drain(self._failures)
        self._completed += len(completions)
        self._failed += len(failures)
        if completions:
            self._success_sum += sum(completions)
        executions = completions + failures if failures else completions
        if executions:
            self._exec.add_many(executions)
            self._exec_sum += sum(executions)
        self._retried += len(_drain(self._retries))
        self._arrived += len(_drain(self._arrivals))
        # the next recorder to find a batch buffered folds it (what came during this fold too)
        self._limit = _BATCH

    def rates(self, window: float | None = None) -> tuple[float, float]:
        """Return `(arrival_rate, completion_rate)` in tasks/second over the recent `window`.

        `window` defaults to the collector's; a shorter one (down to a tenth of it) reacts
        faster to a change of load, which is what a scaling policy wants.
        """
        recent = self.recent(window)
        return recent.arrival_rate, recent.completion_rate

    def recent(self, window: float | None = None) -> RecentActivity:
        """Rates, mean run time and error ratio over the recent `window` (as for `rates`)."""
        with self._lock:
            return self._recent_locked(self._window if window is None else window)

    def _recent_locked(self, window: float) -> RecentActivity:
        now = self._clock()
        totals = self._totals_locked(now)
        samples = self._samples
        if now - samples[-1][0] >= self._resolution:
            samples.append(totals)
        # the newest sample at least one window old, else the oldest we have
        then = samples[0]
        for sample in samples:
            if now - sample[0] < window:
                break
            then = sample
        elapsed = now - then[0]
        if elapsed <= 0:
            return _IDLE
        _, arrived, finished, succeeded, success_time, errors = (
            b - a for a, b in zip(then, totals, strict=True)
        )
        attempts = succeeded + errors
        return RecentActivity(
            arrival_rate=arrived / elapsed,
            completion_rate=finished / elapsed,
            execution_time=success_time / succeeded if succeeded else 0.0,
            error_ratio=errors / attempts if attempts else 0.0,
        )

    def _totals_locked(self, now: float) -> _Totals:
        """The running totals: folded, plus what the buffers hold.

        No fold runs meanwhile (the lock is ours), and recorders only append.
        """
        successes = self._completions[:]
        failed = self._failed + len(self._failures)
        return (
            now,
            self._arrived + len(self._arrivals),
            self._completed + len(successes) + failed,
            self._completed + len(successes),
            self._success_sum + sum(successes),
            failed + self._retried + len(self._retries),
        )

    def metrics(self) -> TaskMetrics:
        """Return a snapshot of everything recorded before the call."""
        with self._lock:
            self._fold()
            recent = self._recent_locked(self._window)
            measured = self._exec.count
            waited = self._wait.count
            low, high = (self._exec.min, self._exec.max) if measured else (0.0, 0.0)
            e50, e95, e99 = self._exec.quantiles((0.5, 0.95, 0.99)) if measured else (0.0,) * 3
            w50, w95, w99 = self._wait.quantiles((0.5, 0.95, 0.99)) if waited else (0.0,) * 3
            done = self._completed + self._failed
            return TaskMetrics(
                average_execution_time=self._exec_sum / measured if measured else 0.0,
                min_execution_time=low,
                max_execution_time=high,
                p50_execution_time=min(max(e50, low), high),
                p95_execution_time=min(max(e95, low), high),
                p99_execution_time=min(max(e99, low), high),
                average_wait_time=self._wait_sum / waited if waited else 0.0,
                p50_wait_time=w50,
                p95_wait_time=w95,
                p99_wait_time=w99,
                task_arrival_rate=recent.arrival_rate,
                task_completion_rate=recent.completion_rate,
                total_tasks_arrived=self._arrived,
                total_tasks_completed=self._completed,
                total_tasks_failed=self._failed,
                total_tasks_retried=self._retried,
                success_rate=self._completed / done if done else 0.0,
                failure_rate=self._failed / done if done else 0.0,
                total_tasks_rejected=self._rejected,
                total_tasks_shed=self._shed,
            )


def _drain(buffer: list[_T]) -> list[_T]:
    """Remove and return the items `buffer` holds now; items appended meanwhile stay."""
    n = len(buffer)
    items = buffer[:n]
    del buffer[:n]
    return items
