"""An opt-in plugin: tasker's events about a task carry what its submitter had bound.

tasker logs most events about a task from a worker thread (or a worker's asyncio task), whose
`contextvars` are not the submitter's: `structlog.contextvars` values bound where the task was
submitted — a request id, a user — would be missing from `task.failed`, `task.retried` and the
like. With this plugin, each task's context is remembered when it is queued (in the submitter's
thread), and `StructlogLogger` emits events about that task *inside* it, so the application's
`merge_contextvars` processor finds the submitter's values. Events about a task also get:

- `queue`: `"main"` or `"priority"` (`run_task` calls, which skip the queues, say `"main"`);
- `duration`: for events about an attempt (`task.failed`, `task.retried`, `task.timed_out`,
  `task.abandoned`, `worker.unhealthy`), the seconds it had run when the event was logged.

Use it per manager: `.with_plugins(tasker_structlog.task_context).with_logger("structlog")`.
A task is forgotten when its future is garbage-collected, and every task of a manager when it
stops. Give managers running at the same time distinct names (`with_name`; the default names
are): tasks are looked up by manager name and task id.
"""

from __future__ import annotations

import contextvars
import time
import weakref
from dataclasses import dataclass

from tasker import hookimpl
from tasker.metrics import TaskInfo

__all__ = [
    "TrackedTask",
    "lookup",
    "tasker_manager_stopped",
    "tasker_task_queued",
    "tasker_task_started",
    "tracked",
]

QUEUE_MAIN = "main"
QUEUE_PRIORITY = "priority"


@dataclass(slots=True)
class TrackedTask:
    """What is remembered about a task while it exists."""

    context: contextvars.Context | None
    """The submitter's context, copied when the task was queued (`None` under `run_task`)."""
    queue: str
    """`"main"` or `"priority"`."""
    started: float | None = None
    """`time.perf_counter()` when its latest attempt started."""


# Lock-free on purpose: entries are forgotten from weakref callbacks, which may run during a
# garbage collection on any thread, even one in the middle of an update here; single dict
# operations are atomic, and iteration goes over a snapshot of the keys.
_tasks: dict[tuple[str, int], TrackedTask] = {}


def _track(manager: str, task: TaskInfo, context: contextvars.Context | None) -> TrackedTask:
    key = (manager, task.task_id)
    entry = TrackedTask(context, QUEUE_PRIORITY if task.priority else QUEUE_MAIN)
    try:
        weakref.finalize(task, _forget, key, entry)
    except TypeError:  # a task that cannot be referenced weakly is not tracked
        return entry
    _tasks[key] = entry
    return entry


def _forget(key: tuple[str, int], entry: TrackedTask) -> None:
    if _tasks.get(key) is entry:  # not a newer task under the same manager name and id
        _tasks.pop(key, None)


def lookup(manager: object, task_id: object) -> TrackedTask | None:
    """The tracked task `task_id` of the manager named `manager`, if any."""
    if not isinstance(manager, str) or not isinstance(task_id, int):
        return None
    return _tasks.get((manager, task_id))


def tracked() -> int:
    """How many tasks are remembered right now."""
    return len(_tasks)


@hookimpl
def tasker_task_queued(manager: str, task: TaskInfo) -> None:
    """Remember the submitter's context (this runs in the submitter's thread or task)."""
    _track(manager, task, contextvars.copy_context())


@hookimpl
def tasker_task_started(manager: str, task: TaskInfo) -> None:
    """Note when the attempt started; start tracking `run_task` calls, which are not queued."""
    entry = _tasks.get((manager, task.task_id))
    if entry is None:
        entry = _track(manager, task, None)
    entry.started = time.perf_counter()


@hookimpl
def tasker_manager_stopped(manager: str) -> None:
    """Forget every task of the manager: its names may be reused by another manager."""
    for key in list(_tasks):
        if key[0] == manager:
            _tasks.pop(key, None)
