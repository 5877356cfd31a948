"""Task metrics: the collector protocol, the snapshot type and the built-in collector.

The in-memory collector uses bounded memory whatever the number of tasks: durations go into
fixed-size [`QuantileSketch`][tasker.sketch.QuantileSketch]es (1 % relative error) and rates are
computed over a sliding window of recent counts, never over the manager's whole lifetime.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tasker.sketch import QuantileSketch

__all__ = [
    "COMPLETED",
    "FAILED",
    "RETRIED",
    "InMemoryCollector",
    "MetricsCollector",
    "TaskInfo",
    "TaskMetrics",
]

_BATCH = 256  # durations buffered before they are folded into the sketches

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
    Durations are `0.0` until a task has been measured.
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


class InMemoryCollector:
    """The default collector: aggregates in bounded memory and answers `metrics()` cheaply.

    Args:
        window: length in seconds of the sliding window over which arrival and completion rates
            are measured.
        relative_accuracy: the percentile error bound of the duration sketches.
        clock: a monotonic clock returning seconds (tests inject a fake one).
    """

    __slots__ = (
        "_arrived",
        "_clock",
        "_completed",
        "_exec",
        "_exec_max",
        "_exec_min",
        "_exec_sum",
        "_failed",
        "_lock",
        "_new_exec",
        "_new_wait",
        "_resolution",
        "_retried",
        "_samples",
        "_wait",
        "_wait_sum",
        "_window",
    )

    def __init__(
        self,
        *,
        window: float = 1.0,
        relative_accuracy: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window > 0:
            raise ValueError(f"window must be > 0 seconds, got {window!r}")
        self._lock = threading.Lock()
        self._clock = clock
        self._window = window
        self._resolution = window / 10
        self._exec = QuantileSketch(relative_accuracy)
        self._wait = QuantileSketch(relative_accuracy)
        self._exec_sum = 0.0
        self._exec_min = math.inf
        self._exec_max = 0.0
        self._wait_sum = 0.0
        # durations not yet in the sketches: folded in batches (cheaper per value), at most
        # _BATCH of them, so memory stays bounded
        self._new_exec: list[float] = []
        self._new_wait: list[float] = []
        self._arrived = 0
        self._completed = 0
        self._failed = 0
        self._retried = 0
        # (time, arrived, finished) every `resolution` seconds at most: the sliding window
        self._samples: deque[tuple[float, int, int]] = deque([(clock(), 0, 0)], maxlen=12)

    @property
    def window(self) -> float:
        """The length, in seconds, of the window rates are measured over."""
        return self._window

    def record_arrival(self, task: TaskInfo) -> None:
        """Count one submitted task."""
        with self._lock:
            self._arrived += 1

    def record_attempt(self, wait_time: float, execution_time: float, outcome: int) -> None:
        """Record a whole attempt at once: its wait, its run and how it ended.

        `outcome` is `COMPLETED`, `FAILED` or `RETRIED`. Equivalent to `record_start` followed by
        `record_completion`, `record_failure` or `record_retry`, with one lock round trip
        instead of two: the manager's hot path uses it.
        """
        with self._lock:
            waits = self._new_wait
            waits.append(wait_time)
            if outcome == COMPLETED:
                self._completed += 1
                self._new_exec.append(execution_time)
            elif outcome == FAILED:
                self._failed += 1
                self._new_exec.append(execution_time)
            else:
                self._retried += 1
            if len(waits) >= _BATCH:
                self._fold()

    def record_start(self, task: TaskInfo, wait_time: float) -> None:
        """Record how long an attempt waited in the queue."""
        with self._lock:
            self._new_wait.append(wait_time)
            if len(self._new_wait) >= _BATCH:
                self._fold()

    def record_completion(self, task: TaskInfo, execution_time: float) -> None:
        """Count one success and record its execution time."""
        with self._lock:
            self._completed += 1
            self._add_execution(execution_time)

    def record_failure(self, task: TaskInfo, execution_time: float, error: BaseException) -> None:
        """Count one failure and record its execution time."""
        with self._lock:
            self._failed += 1
            self._add_execution(execution_time)

    def record_retry(self, task: TaskInfo, error: BaseException) -> None:
        """Count one retry."""
        with self._lock:
            self._retried += 1

    def _add_execution(self, execution_time: float) -> None:
        self._new_exec.append(execution_time)
        if len(self._new_exec) >= _BATCH:
            self._fold()

    def _fold(self) -> None:
        """Move the buffered durations into the sketches and the exact sums (lock held)."""
        executions, waits = self._new_exec, self._new_wait
        if executions:
            self._exec.add_many(executions)
            self._exec_sum += sum(executions)
            low, high = min(executions), max(executions)
            if low < self._exec_min:
                self._exec_min = low
            if high > self._exec_max:
                self._exec_max = high
            executions.clear()
        if waits:
            self._wait.add_many(waits)
            self._wait_sum += sum(waits)
            waits.clear()

    def rates(self, window: float | None = None) -> tuple[float, float]:
        """Return `(arrival_rate, completion_rate)` in tasks/second over the recent `window`.

        `window` defaults to the collector's; a shorter one (down to a tenth of it) reacts
        faster to a change of load, which is what a scaling policy wants.
        """
        with self._lock:
            return self._rates_locked(self._window if window is None else window)

    def _rates_locked(self, window: float | None = None) -> tuple[float, float]:
        if window is None:
            window = self._window
        now = self._clock()
        finished = self._completed + self._failed
        samples = self._samples
        if now - samples[-1][0] >= self._resolution:
            samples.append((now, self._arrived, finished))
        # the newest sample at least one window old, else the oldest we have
        then, arrived0, finished0 = samples[0]
        for sample in samples:
            if now - sample[0] < window:
                break
            then, arrived0, finished0 = sample
        elapsed = now - then
        if elapsed <= 0:
            return 0.0, 0.0
        return (self._arrived - arrived0) / elapsed, (finished - finished0) / elapsed

    def metrics(self) -> TaskMetrics:
        """Return a consistent snapshot of everything recorded so far."""
        with self._lock:
            self._fold()
            arrival_rate, completion_rate = self._rates_locked()
            measured = self._exec.count
            waited = self._wait.count
            e50, e95, e99 = self._exec.quantiles((0.5, 0.95, 0.99)) if measured else (0.0,) * 3
            w50, w95, w99 = self._wait.quantiles((0.5, 0.95, 0.99)) if waited else (0.0,) * 3
            done = self._completed + self._failed
            return TaskMetrics(
                average_execution_time=self._exec_sum / measured if measured else 0.0,
                min_execution_time=self._exec_min if measured else 0.0,
                max_execution_time=self._exec_max,
                p50_execution_time=min(max(e50, self._exec_min), self._exec_max),
                p95_execution_time=min(max(e95, self._exec_min), self._exec_max),
                p99_execution_time=min(max(e99, self._exec_min), self._exec_max),
                average_wait_time=self._wait_sum / waited if waited else 0.0,
                p50_wait_time=w50,
                p95_wait_time=w95,
                p99_wait_time=w99,
                task_arrival_rate=arrival_rate,
                task_completion_rate=completion_rate,
                total_tasks_arrived=self._arrived,
                total_tasks_completed=self._completed,
                total_tasks_failed=self._failed,
                total_tasks_retried=self._retried,
                success_rate=self._completed / done if done else 0.0,
                failure_rate=self._failed / done if done else 0.0,
            )
