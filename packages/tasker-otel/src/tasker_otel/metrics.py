"""OpenTelemetry metrics: a `MetricsCollector` for task events, `observe()` for live gauges."""

from __future__ import annotations

import itertools
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from tasker.metrics import TaskInfo
from tasker.stats import ManagerState, TaskStats
from tasker_otel import names
from tasker_otel._util import error_type
from tasker_otel._version import __version__

__all__ = ["ManagerObservation", "OTelCollector", "ObservableManager", "observe"]

Attributes = dict[str, AttributeValue]


def _meter(meter_provider: MeterProvider | None) -> metrics.Meter:
    return metrics.get_meter(
        names.INSTRUMENTATION_SCOPE, __version__, meter_provider=meter_provider
    )


class OTelCollector:
    """A tasker `MetricsCollector` recording into OpenTelemetry instruments.

    Counters `tasker.task.submitted`, `.completed`, `.failed`, `.retried`, `.rejected` (a full
    queue refused the submission) and `.shed` (a task waited too long), and histograms
    `tasker.task.duration` and `tasker.task.wait_time` (seconds, with explicit bucket advice),
    with the attributes `tasker.queue`, `tasker.task.outcome`, `error.type` and, when given,
    `tasker.manager` (see `tasker_otel.names`). It runs beside the built-in collector:
    `manager.metrics()` keeps working.

    Registered as `"otel"`: `.with_metrics("otel")`. When the manager is built it binds the
    collector, which then labels every point with `tasker.manager` and, unless `gauges=False`,
    reports the manager's live state too (see `observe`).

    Args:
        meter_provider: where the instruments live; the global provider by default (an
            application that sets it after building its managers loses nothing).
        manager: the name recorded as `tasker.manager`; by default the name of the manager the
            collector is bound to.
        buckets: the bucket boundaries advised for both duration histograms, in seconds.
        gauges: observe the bound manager's queues, workers and resources.
    """

    __slots__ = (
        "_by_queue",
        "_completed",
        "_duration",
        "_failed",
        "_gauges",
        "_manager",
        "_outcomes",
        "_provider",
        "_rejected",
        "_retried",
        "_shed",
        "_submitted",
        "_wait",
        "observation",
    )

    _by_queue: dict[bool, Attributes]
    _outcomes: dict[bool, Attributes]

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        manager: str | None = None,
        buckets: Sequence[float] = names.DURATION_BUCKETS,
        gauges: bool = True,
    ) -> None:
        if not isinstance(gauges, bool):
            raise TypeError(f"gauges must be True or False, got {gauges!r}")
        buckets = _boundaries(buckets)
        self._provider = meter_provider
        self._gauges = gauges
        self._manager = manager
        self.observation: ManagerObservation | None = None
        meter = _meter(meter_provider)
        self._submitted = meter.create_counter(
            names.TASKS_SUBMITTED, unit=names.UNIT_TASK, description="Tasks submitted."
        )
        self._completed = meter.create_counter(
            names.TASKS_COMPLETED, unit=names.UNIT_TASK, description="Tasks that succeeded."
        )
        self._failed = meter.create_counter(
            names.TASKS_FAILED,
            unit=names.UNIT_TASK,
            description="Tasks that failed for good: their caller got an exception.",
        )
        self._retried = meter.create_counter(
            names.TASKS_RETRIED,
            unit=names.UNIT_RETRY,
            description="Attempts that failed on an unhealthy worker and were run again.",
        )
        self._rejected = meter.create_counter(
            names.TASKS_REJECTED,
            unit=names.UNIT_TASK,
            description="Submissions refused because the queue was full.",
        )
        self._shed = meter.create_counter(
            names.TASKS_SHED,
            unit=names.UNIT_TASK,
            description="Tasks failed without running: they waited in the queue too long.",
        )
        self._duration = meter.create_histogram(
            names.TASK_DURATION,
            unit=names.UNIT_SECONDS,
            description="How long the final attempt of a task ran.",
            explicit_bucket_boundaries_advisory=list(buckets),
        )
        self._wait = meter.create_histogram(
            names.TASK_WAIT_TIME,
            unit=names.UNIT_SECONDS,
            description="How long an attempt waited in its queue before a worker started it.",
            explicit_bucket_boundaries_advisory=list(buckets),
        )
        self._label(manager)

    def bind(self, manager: ObservableManager) -> None:
        """Called by tasker once the manager is built: label by its name, observe its state."""
        if self._manager is None:
            self._manager = manager.name
            self._label(manager.name)
        if self._gauges and self.observation is None:
            self.observation = observe(manager, meter_provider=self._provider)

    def _label(self, manager: str | None) -> None:
        base: Attributes = {} if manager is None else {names.ATTR_MANAGER: manager}
        # attribute sets are built once: recording does no allocation on the success path
        self._by_queue = {
            False: {**base, names.ATTR_QUEUE: names.QUEUE_MAIN},
            True: {**base, names.ATTR_QUEUE: names.QUEUE_PRIORITY},
        }
        self._outcomes = {
            priority: {**attributes, names.ATTR_OUTCOME: names.OUTCOME_COMPLETED}
            for priority, attributes in self._by_queue.items()
        }

    def record_arrival(self, task: TaskInfo) -> None:
        """Count a submitted task."""
        self._submitted.add(1, self._by_queue[task.priority])

    def record_start(self, task: TaskInfo, wait_time: float) -> None:
        """Record how long the attempt waited in its queue."""
        self._wait.record(wait_time, self._by_queue[task.priority])

    def record_completion(self, task: TaskInfo, execution_time: float) -> None:
        """Count a success and record its run time."""
        self._completed.add(1, self._by_queue[task.priority])
        self._duration.record(execution_time, self._outcomes[task.priority])

    def record_failure(self, task: TaskInfo, execution_time: float, error: BaseException) -> None:
        """Count a failure, by error type, and record its run time."""
        attributes = {**self._by_queue[task.priority], names.ATTR_ERROR_TYPE: error_type(error)}
        self._failed.add(1, attributes)
        attributes[names.ATTR_OUTCOME] = names.OUTCOME_FAILED
        self._duration.record(execution_time, attributes)

    def record_retry(self, task: TaskInfo, error: BaseException) -> None:
        """Count a retry, by error type."""
        attributes = {**self._by_queue[task.priority], names.ATTR_ERROR_TYPE: error_type(error)}
        self._retried.add(1, attributes)

    def record_rejection(self, task: TaskInfo) -> None:
        """Count a submission refused by a full queue."""
        self._rejected.add(1, self._by_queue[task.priority])

    def record_shed(self, task: TaskInfo, wait_time: float) -> None:
        """Count a task shed for waiting too long, and record its wait."""
        self._shed.add(1, self._by_queue[task.priority])
        self._wait.record(wait_time, self._by_queue[task.priority])


class ObservableManager(Protocol):
    """**Protocol**: what `observe()` reads: `TaskManager` and `AsyncTaskManager` both fit."""

    @property
    def name(self) -> str:
        """The manager's name."""
        ...

    def stats(self) -> TaskStats:
        """A live snapshot of workers, queues and pool."""
        ...


_ENDED = (ManagerState.STOPPED, ManagerState.KILLED)


class _Gauges:
    """The observed instruments of one meter provider, reading every observed manager."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._lock = threading.Lock()
        self._observed: dict[int, ManagerObservation] = {}
        meter.create_observable_up_down_counter(
            names.QUEUE_DEPTH,
            callbacks=[self._reader(_queue_depth)],
            unit=names.UNIT_TASK,
            description="Tasks waiting in the queues.",
        )
        meter.create_observable_up_down_counter(
            names.WORKER_COUNT,
            callbacks=[self._reader(_worker_count)],
            unit=names.UNIT_WORKER,
            description="Live workers: base ones, and burst ones added by the scaling policy.",
        )
        meter.create_observable_up_down_counter(
            names.WORKER_BUSY,
            callbacks=[self._reader(_worker_busy)],
            unit=names.UNIT_WORKER,
            description="Workers running a task.",
        )
        meter.create_observable_up_down_counter(
            names.RESOURCE_AVAILABLE,
            callbacks=[self._reader(_resources)],
            unit=names.UNIT_RESOURCE,
            description="Pre-created resources free for run_task.",
        )

    def observe(self, manager: ObservableManager) -> ManagerObservation:
        """The observation of `manager`, made once (observing twice adds no duplicate series)."""
        with self._lock:
            for observation in self._observed.values():
                if observation.observes(manager):
                    return observation
            observation = ManagerObservation(manager, self)
            self._observed[id(observation)] = observation
            return observation

    def discard(self, observation: ManagerObservation) -> None:
        with self._lock:
            self._observed.pop(id(observation), None)

    def _reader(
        self, read: Callable[[TaskStats, Attributes], Iterable[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                observed = list(self._observed.values())
            found: list[Observation] = []
            for observation in observed:
                try:
                    stats = observation.manager_stats()
                except RuntimeError:  # closed meanwhile
                    continue
                if stats.state in _ENDED:  # a stopped manager has nothing left to show
                    observation.close()
                    continue
                found.extend(read(stats, observation.attributes))
            return found

        return callback


def _queue_depth(stats: TaskStats, base: Attributes) -> Iterable[Observation]:
    yield Observation(stats.queued_tasks, {**base, names.ATTR_QUEUE: names.QUEUE_MAIN})
    yield Observation(stats.priority_tasks, {**base, names.ATTR_QUEUE: names.QUEUE_PRIORITY})


def _worker_count(stats: TaskStats, base: Attributes) -> Iterable[Observation]:
    burst = stats.burst_workers
    yield Observation(
        stats.active_workers - burst, {**base, names.ATTR_WORKER_KIND: names.WORKER_BASE}
    )
    yield Observation(burst, {**base, names.ATTR_WORKER_KIND: names.WORKER_BURST})


def _worker_busy(stats: TaskStats, base: Attributes) -> Iterable[Observation]:
    yield Observation(stats.busy_workers, base)


def _resources(stats: TaskStats, base: Attributes) -> Iterable[Observation]:
    yield Observation(stats.available_resources, base)


_gauges: weakref.WeakKeyDictionary[MeterProvider, _Gauges] = weakref.WeakKeyDictionary()
_gauges_lock = threading.Lock()


class ManagerObservation:
    """A manager whose live state is observed; returned by `observe()`.

    Observation ends with `close()`, at the end of a `with` block, or by itself once the
    manager has stopped (its series then disappear from the export).
    """

    __slots__ = ("_gauges", "_manager", "attributes")

    def __init__(self, manager: ObservableManager, gauges: _Gauges) -> None:
        self._manager: ObservableManager | None = manager
        self._gauges = gauges
        self.attributes: Attributes = {names.ATTR_MANAGER: manager.name}

    @property
    def manager(self) -> str:
        """The observed manager's name."""
        return str(self.attributes[names.ATTR_MANAGER])

    @property
    def closed(self) -> bool:
        """Whether observation has ended."""
        return self._manager is None

    def observes(self, manager: ObservableManager) -> bool:
        """Whether this observation is of `manager` (and still going)."""
        return self._manager is manager

    def manager_stats(self) -> TaskStats:
        """The manager's current stats (read by the instruments' callbacks)."""
        manager = self._manager
        if manager is None:
            raise RuntimeError(f"manager {self.manager!r} is no longer observed")
        return manager.stats()

    def close(self) -> None:
        """Stop observing; the manager is no longer referenced. Idempotent."""
        self._manager = None
        self._gauges.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def observe(
    manager: ObservableManager, *, meter_provider: MeterProvider | None = None
) -> ManagerObservation:
    """Report a running manager's live state as observed up-down counters.

    `tasker.queue.depth` (per `tasker.queue`), `tasker.worker.count` (per `tasker.worker.kind`),
    `tasker.worker.busy` and `tasker.resource.available`, each with `tasker.manager`, read
    from `manager.stats()` whenever the meter provider collects. One set of instruments serves
    every manager observed through the same provider.

    Args:
        manager: a built `TaskManager` or `AsyncTaskManager`.
        meter_provider: where the instruments live; the global provider by default.

    Returns:
        The observation: `close()` it (or use it as a context manager) to stop; it also ends by
        itself once the manager has stopped.
    """
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _gauges_lock:
        gauges = _gauges.get(provider)
        if gauges is None:
            gauges = _gauges[provider] = _Gauges(_meter(provider))
    return gauges.observe(manager)


def _boundaries(buckets: Sequence[float]) -> tuple[float, ...]:
    """Histogram boundaries: finite numbers (not bool) >= 0, strictly increasing."""
    values = tuple(buckets)
    if not values or any(
        isinstance(b, bool) or not isinstance(b, int | float) or not 0 <= b < math.inf
        for b in values
    ):
        raise ValueError(f"buckets must be finite numbers of seconds >= 0, got {buckets!r}")
    if any(a >= b for a, b in itertools.pairwise(values)):
        raise ValueError(f"buckets must be strictly increasing, got {buckets!r}")
    return values
