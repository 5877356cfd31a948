"""What happens after a task attempt raised: the one decision every executor shares."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from tasker.errors import RetriesExhaustedError, WorkerCrashedError
from tasker.events import Event
from tasker.health import HealthChecker
from tasker.metrics import TaskInfo

__all__ = ["FailureDecision", "decide_failure"]


@dataclass(frozen=True, slots=True)
class FailureDecision:
    """The verdict on a failed attempt.

    Attributes:
        replace_worker: the worker's resource is unhealthy: destroy it and start afresh.
        retry: queue the task again (only when `error` is `None`).
        error: what the caller gets when the task is not retried.
    """

    replace_worker: bool
    retry: bool
    error: BaseException | None


def decide_failure(
    task: TaskInfo,
    error: BaseException,
    *,
    health_check: HealthChecker,
    max_retries: int,
    log: Callable[..., None],
) -> FailureDecision:
    """Decide between "the task's own failure", "retry on a fresh worker" and "give up".

    - healthy (per `health_check`; never a `WorkerCrashedError`): the caller gets `error`
      unchanged, the worker stays;
    - unhealthy, a once-task: the caller gets `error`, the worker is replaced, no retry;
    - unhealthy, attempts left: the worker is replaced and the task retried;
    - unhealthy, no attempts left: the caller gets `RetriesExhaustedError` chaining `error`.

    A health check that raises (any exception, `BaseException` included) is logged through
    `log`, the manager's guarded log path, and its verdict taken as "healthy", so a broken
    check can neither lose the task nor churn the workers.
    """
    try:
        # a place that died took the resource with it, whatever the check would say
        healthy = not isinstance(error, WorkerCrashedError) and bool(health_check(error))
    except BaseException as check_error:  # user code: contained, whatever it raises
        log(
            logging.ERROR,
            Event.HEALTH_CHECK_FAILED,
            task_id=task.task_id,
            error=check_error,
            task_error=error,
        )
        healthy = True
    if healthy:
        return FailureDecision(replace_worker=False, retry=False, error=error)
    if task.once:
        return FailureDecision(replace_worker=True, retry=False, error=error)
    if task.attempt <= max_retries:
        return FailureDecision(replace_worker=True, retry=True, error=None)
    exhausted = RetriesExhaustedError(
        f"task {task.task_id} failed on an unhealthy worker {task.attempt} times "
        f"(max_retries={max_retries}): {error!r}",
        attempts=task.attempt,
    )
    exhausted.__cause__ = error
    return FailureDecision(replace_worker=True, retry=False, error=exhausted)
