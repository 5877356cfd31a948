"""Hook specifications: everything a tasker plugin can implement.

A plugin is a module or object with functions decorated by `tasker.hookimpl` and named after
these specifications; it is found through the `tasker` entry-point group, or passed with
`TaskManagerBuilder.with_plugins(...)`. A hook implementation may accept any subset of the
parameters a specification lists.

There are two families:

- **Discovery hooks** (`tasker_register_*`) are called once, when plugins load. Each receives a
  `Registry` and calls `registry.register(name, factory)` for every strategy it offers; the
  builder then resolves names through it (`.with_policy("rate", interval=0.2)`). Results are
  ignored; every implementation is called.
- **Observer hooks** see lifecycle events as they happen, on the thread or event loop where they
  happen. They must be quick and must not block. Results are ignored; every implementation is
  called, and one that raises is logged with its plugin's name and skipped: it never fails a
  task, stops a worker, or keeps other plugins from being called. A hook no plugin implements
  costs nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from tasker.metrics import TaskInfo
    from tasker.plugins import Registry

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("tasker")
"""Marks a hook specification (used in this module only)."""

hookimpl = pluggy.HookimplMarker("tasker")
"""Marks a plugin's hook implementation: `@tasker.hookimpl def tasker_register_policies(...)`."""


# --------------------------------------------------------------------------- discovery


@hookspec
def tasker_register_executors(registry: Registry[Any]) -> None:
    """Register executors, for `with_executor(name)`.

    Args:
        registry: call `registry.register(name, factory)`; `factory()` returns an `Executor`.

    Returns:
        Nothing; every implementation is called.
    """


@hookspec
def tasker_register_policies(registry: Registry[Any]) -> None:
    """Register scaling policies, for `with_policy(name, **options)`.

    Args:
        registry: call `registry.register(name, factory)`; `factory(**options)` returns a
            `ScalingPolicy`.

    Returns:
        Nothing; every implementation is called.
    """


@hookspec
def tasker_register_health_checks(registry: Registry[Any]) -> None:
    """Register health checkers, for `with_health_check(name, **options)`.

    Args:
        registry: call `registry.register(name, factory)`; `factory(**options)` returns a
            `HealthChecker` (any `Callable[[BaseException], bool]`).

    Returns:
        Nothing; every implementation is called.
    """


@hookspec
def tasker_register_loggers(registry: Registry[Any]) -> None:
    """Register loggers, for `with_logger(name, **options)`.

    Args:
        registry: call `registry.register(name, factory)`; `factory(**options)` returns a
            `Logger`.

    Returns:
        Nothing; every implementation is called.
    """


@hookspec
def tasker_register_collectors(registry: Registry[Any]) -> None:
    """Register metrics collectors, for `with_metrics(name, **options)`.

    Args:
        registry: call `registry.register(name, factory)`; `factory(**options)` returns a
            `MetricsCollector`.

    Returns:
        Nothing; every implementation is called.
    """


# --------------------------------------------------------------------------- tasks


@hookspec
def tasker_task_queued(manager: str, task: TaskInfo) -> None:
    """A task entered a queue.

    Called in the submitting thread before any worker can take the task, so a task's
    `tasker_task_started` never comes before its `tasker_task_queued`.

    Args:
        manager: the manager's name.
        task: the task (`task_id`, `priority`, `once`, `attempt`).

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


@hookspec
def tasker_task_started(manager: str, task: TaskInfo, worker_id: int | None) -> None:
    """An attempt of a task started.

    Args:
        manager: the manager's name.
        task: the task; `task.attempt` is 1 on the first run.
        worker_id: the worker running it, or `None` under `run_task`.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


@hookspec
def tasker_task_attempt_context(
    manager: str, task: TaskInfo, worker_id: int | None
) -> AbstractContextManager[Any] | None:
    """Wrap one attempt of a task: the context manager returned is entered inside the task.

    It is entered and exited in the task's own context (the submitter's `contextvars`), on the
    thread or event loop that runs the attempt, so it can make a tracing span current for the
    task's code; the attempt's exception, if any, passes through its `__exit__` (which cannot
    suppress it). Errors raised by `__enter__` or `__exit__` are logged and skipped.

    Args:
        manager: the manager's name.
        task: the task; `task.attempt` is 1 on the first run.
        worker_id: the worker running it, or `None` under `run_task`.

    Returns:
        A context manager, or `None` to stay out; every implementation is called.
    """


@hookspec
def tasker_task_finished(
    manager: str, task: TaskInfo, outcome: str, error: BaseException | None
) -> None:
    """A task ended for good (it will not run again), whatever ended it.

    That includes a queued task its caller cancelled and queued tasks failed because the
    manager broke; they never started.

    Args:
        manager: the manager's name.
        task: the task.
        outcome: `"completed"`, `"failed"`, `"timed_out"` or `"cancelled"`.
        error: what the caller got, for every outcome but `"completed"`.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


@hookspec
def tasker_task_retried(manager: str, task: TaskInfo, error: BaseException) -> None:
    """An attempt failed on an unhealthy worker and the task was queued again.

    Args:
        manager: the manager's name.
        task: the task; `task.attempt` is the attempt that failed.
        error: the exception of the failed attempt.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


# --------------------------------------------------------------------------- workers


@hookspec
def tasker_worker_started(manager: str, worker_id: int, burst: bool) -> None:
    """A worker created its resource and is ready for tasks.

    Args:
        manager: the manager's name.
        worker_id: the worker's id (a replacement gets a new one).
        burst: whether the scaling policy added it on top of the base workers.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


@hookspec
def tasker_worker_stopped(manager: str, worker_id: int) -> None:
    """A worker left: it retired, the manager stopped, or it was killed.

    Args:
        manager: the manager's name.
        worker_id: the worker's id.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


@hookspec
def tasker_worker_replaced(manager: str, worker_id: int, replaced_worker_id: int) -> None:
    """A worker's resource turned unhealthy; a replacement takes its place.

    Args:
        manager: the manager's name.
        worker_id: the replacement's id.
        replaced_worker_id: the id of the worker whose resource was destroyed.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


# --------------------------------------------------------------------------- scaling


@hookspec
def tasker_scaled_up(manager: str, workers: int, target: int) -> None:
    """The scaling policy asked for more workers.

    Args:
        manager: the manager's name.
        workers: workers alive before.
        target: workers wanted.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


@hookspec
def tasker_scaled_down(manager: str, workers: int, target: int) -> None:
    """The scaling policy asked idle burst workers to retire.

    Args:
        manager: the manager's name.
        workers: workers alive before.
        target: workers wanted.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


# --------------------------------------------------------------------------- managers


@hookspec
def tasker_manager_started(manager: str) -> None:
    """A manager was built: its base workers are up and it accepts work.

    Args:
        manager: the manager's name.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """


@hookspec
def tasker_manager_stopped(manager: str, killed: bool) -> None:
    """A manager finished shutting down: every worker exited, every resource was destroyed.

    Args:
        manager: the manager's name.
        killed: `True` after `kill()`, `False` after `stop()`.

    Returns:
        Nothing; every implementation is called, failures are logged and skipped.
    """
