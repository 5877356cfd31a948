"""Every name tasker-otel emits — instruments, units, attributes, spans — defined once.

Names follow the OpenTelemetry conventions: dotted lowercase namespaces under `tasker.`, units
in `unit=` (UCUM `s` for durations, `{task}`-style annotations for counts), no `_total` or unit
suffixes (exporters add them: Prometheus shows `tasker.task.completed` as
`tasker_task_completed_total` and `tasker.task.duration` as `tasker_task_duration_seconds`).
"""

from __future__ import annotations

__all__ = [
    "ATTR_ATTEMPT",
    "ATTR_ERROR_TYPE",
    "ATTR_MANAGER",
    "ATTR_ONCE",
    "ATTR_OUTCOME",
    "ATTR_QUEUE",
    "ATTR_TASK_ID",
    "ATTR_WORKER_ID",
    "ATTR_WORKER_KIND",
    "DURATION_BUCKETS",
    "INSTRUMENTATION_SCOPE",
    "METRICS",
    "OUTCOME_COMPLETED",
    "OUTCOME_FAILED",
    "QUEUE_DEPTH",
    "QUEUE_MAIN",
    "QUEUE_PRIORITY",
    "RESOURCE_AVAILABLE",
    "SPAN_TASK",
    "TASKS_COMPLETED",
    "TASKS_FAILED",
    "TASKS_REJECTED",
    "TASKS_RETRIED",
    "TASKS_SHED",
    "TASKS_SUBMITTED",
    "TASK_DURATION",
    "TASK_WAIT_TIME",
    "UNIT_RESOURCE",
    "UNIT_RETRY",
    "UNIT_SECONDS",
    "UNIT_TASK",
    "UNIT_WORKER",
    "WORKER_BASE",
    "WORKER_BURST",
    "WORKER_BUSY",
    "WORKER_COUNT",
]

INSTRUMENTATION_SCOPE = "tasker"
"""The meter's and the tracer's instrumentation scope name."""

# ------------------------------------------------------------------ counters (the collector)

TASKS_SUBMITTED = "tasker.task.submitted"
"""Counter: tasks submitted (`queue_task`, `submit`, `run_task`)."""
TASKS_COMPLETED = "tasker.task.completed"
"""Counter: tasks that succeeded."""
TASKS_FAILED = "tasker.task.failed"
"""Counter: tasks that failed for good (their caller got an exception); with `error.type`."""
TASKS_RETRIED = "tasker.task.retried"
"""Counter: attempts that failed on an unhealthy worker and were run again; with `error.type`."""
TASKS_REJECTED = "tasker.task.rejected"
"""Counter: submissions refused because the queue was full (`with_queue_limit`)."""
TASKS_SHED = "tasker.task.shed"
"""Counter: tasks failed unrun for waiting longer than `with_max_queue_wait` allows."""

# ---------------------------------------------------------------- histograms (the collector)

TASK_DURATION = "tasker.task.duration"
"""Histogram: how long the final attempt of a task ran, by `tasker.task.outcome`."""
TASK_WAIT_TIME = "tasker.task.wait_time"
"""Histogram: how long an attempt waited in its queue before a worker started it."""

# ------------------------------------------------------------ up-down counters (`observe()`)

QUEUE_DEPTH = "tasker.queue.depth"
"""Observed up-down counter: tasks waiting, per `tasker.queue`."""
WORKER_COUNT = "tasker.worker.count"
"""Observed up-down counter: live workers, per `tasker.worker.kind` (their sum: all workers)."""
WORKER_BUSY = "tasker.worker.busy"
"""Observed up-down counter: workers running a task."""
RESOURCE_AVAILABLE = "tasker.resource.available"
"""Observed up-down counter: pre-created resources free for `run_task`."""

METRICS = (
    TASKS_SUBMITTED,
    TASKS_COMPLETED,
    TASKS_FAILED,
    TASKS_RETRIED,
    TASKS_REJECTED,
    TASKS_SHED,
    TASK_DURATION,
    TASK_WAIT_TIME,
    QUEUE_DEPTH,
    WORKER_COUNT,
    WORKER_BUSY,
    RESOURCE_AVAILABLE,
)
"""Every instrument name."""

# --------------------------------------------------------------------------------- units

UNIT_SECONDS = "s"
"""Durations."""
UNIT_TASK = "{task}"
"""Counts of tasks."""
UNIT_RETRY = "{retry}"
"""Counts of retries."""
UNIT_WORKER = "{worker}"
"""Counts of workers."""
UNIT_RESOURCE = "{resource}"
"""Counts of resources."""

DURATION_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
"""Bucket boundaries advised for both duration histograms, in seconds: 1 ms to 5 min."""

# ---------------------------------------------------------------------------- attributes

ATTR_MANAGER = "tasker.manager"
"""The manager's name (`with_name`): tells the managers of one application apart."""
ATTR_QUEUE = "tasker.queue"
"""`main` or `priority`: the queue a task was submitted to (`run_task` calls count as `main`)."""
ATTR_OUTCOME = "tasker.task.outcome"
"""`completed` or `failed`, on `tasker.task.duration`."""
ATTR_ERROR_TYPE = "error.type"
"""The exception's class (`KeyError`, `mypackage.errors.Timeout`), on failures and retries."""
ATTR_WORKER_KIND = "tasker.worker.kind"
"""`base` or `burst`, on `tasker.worker.count`."""
ATTR_TASK_ID = "tasker.task.id"
"""Span attribute: the task's id within its manager."""
ATTR_ATTEMPT = "tasker.task.attempt"
"""Span attribute: 1 for the first run, 2 for the first retry, and so on."""
ATTR_WORKER_ID = "tasker.worker.id"
"""Span attribute: the worker running the attempt (absent under `run_task`)."""
ATTR_ONCE = "tasker.task.once"
"""Span attribute: whether the task is never run twice."""

# ------------------------------------------------------------------------ attribute values

QUEUE_MAIN = "main"
"""`tasker.queue` of normal tasks."""
QUEUE_PRIORITY = "priority"
"""`tasker.queue` of priority tasks."""
OUTCOME_COMPLETED = "completed"
"""`tasker.task.outcome` of a success."""
OUTCOME_FAILED = "failed"
"""`tasker.task.outcome` of a failure."""
WORKER_BASE = "base"
"""`tasker.worker.kind` of the always-on workers."""
WORKER_BURST = "burst"
"""`tasker.worker.kind` of workers the scaling policy added."""

# --------------------------------------------------------------------------------- spans

SPAN_TASK = "tasker.task"
"""The span of one task attempt."""
