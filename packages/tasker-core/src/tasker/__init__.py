"""tasker: concurrent work on expensive, long-lived resources.

A [`TaskManager`][tasker.TaskManager] runs tasks `fn(resource)` on workers that each own a
resource (a connection, a client, a model), with a priority queue, health-checked retries and
worker replacement, rate-based bursting, graceful `stop()` and immediate `kill()`, and
bounded-memory metrics.
"""

from __future__ import annotations

from tasker._task import AsyncTaskFuture, RunningTask, TaskFuture, TaskState, current_task
from tasker._version import __version__
from tasker.async_manager import AsyncTaskManager
from tasker.builder import AsyncTaskManagerBuilder, TaskManagerBuilder
from tasker.errors import (
    CancelledError,
    ManagerBrokenError,
    ManagerClosedError,
    QueueFullError,
    RemoteTaskError,
    ResourceCreationError,
    RetriesExhaustedError,
    TaskerError,
    TaskExpiredError,
    WorkerCrashedError,
)
from tasker.events import Event
from tasker.executors import (
    AsyncioExecutor,
    AsyncPlace,
    Executor,
    Place,
    ThreadExecutor,
    WorkerHandle,
)
from tasker.health import AlwaysHealthy, HealthChecker, UnhealthyOn
from tasker.hookspecs import hookimpl
from tasker.log import Logger, NullLogger, StdlibLogger
from tasker.manager import TaskManager
from tasker.metrics import InMemoryCollector, MetricsCollector, TaskInfo, TaskMetrics
from tasker.scaling import (
    AdaptivePolicy,
    FixedPolicy,
    LatencyPolicy,
    QueueDepthPolicy,
    RatePolicy,
    ScalingPolicy,
    ScalingSnapshot,
)
from tasker.sketch import QuantileSketch
from tasker.stats import KillReport, ManagerState, TaskStats

__all__ = [
    "AdaptivePolicy",
    "AlwaysHealthy",
    "AsyncPlace",
    "AsyncTaskFuture",
    "AsyncTaskManager",
    "AsyncTaskManagerBuilder",
    "AsyncioExecutor",
    "CancelledError",
    "Event",
    "Executor",
    "FixedPolicy",
    "HealthChecker",
    "InMemoryCollector",
    "KillReport",
    "LatencyPolicy",
    "Logger",
    "ManagerBrokenError",
    "ManagerClosedError",
    "ManagerState",
    "MetricsCollector",
    "NullLogger",
    "Place",
    "QuantileSketch",
    "QueueDepthPolicy",
    "QueueFullError",
    "RatePolicy",
    "RemoteTaskError",
    "ResourceCreationError",
    "RetriesExhaustedError",
    "RunningTask",
    "ScalingPolicy",
    "ScalingSnapshot",
    "StdlibLogger",
    "TaskExpiredError",
    "TaskFuture",
    "TaskInfo",
    "TaskManager",
    "TaskManagerBuilder",
    "TaskMetrics",
    "TaskState",
    "TaskStats",
    "TaskerError",
    "ThreadExecutor",
    "UnhealthyOn",
    "WorkerCrashedError",
    "WorkerHandle",
    "__version__",
    "current_task",
    "hookimpl",
]
