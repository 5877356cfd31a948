"""An example tasker plugin: a scaling policy, a health check and an observer."""

from __future__ import annotations

from collections import Counter
from typing import Any

import tasker
from tasker.plugins import Registry
from tasker.scaling import ScalingSnapshot

outcomes: Counter[str] = Counter()
"""How the tasks of every manager ended, by outcome (filled by the observer below)."""


class QueueThresholdPolicy:
    """Add `step` workers whenever more than `threshold` tasks wait; shrink when none do."""

    def __init__(self, *, threshold: int = 10, step: int = 1, interval: float = 0.1) -> None:
        if threshold < 0 or step < 1 or interval <= 0:
            raise ValueError("need threshold >= 0, step >= 1 and interval > 0")
        self.threshold = threshold
        self.step = step
        self._interval = interval

    @property
    def interval(self) -> float:
        """Seconds between two decisions."""
        return self._interval

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        """Grow by `step` above the threshold, fall back to the busy workers when idle."""
        if snapshot.queued_tasks > self.threshold:
            return snapshot.workers + self.step
        if snapshot.queued_tasks == 0:
            return max(snapshot.busy_workers, snapshot.base_workers)
        return snapshot.workers


class StatusHealthCheck:
    """Errors with a `status` attribute of 500 or more mean the worker's client is broken."""

    def __init__(self, *, minimum: int = 500) -> None:
        self.minimum = minimum

    def __call__(self, error: BaseException, /) -> bool:
        """`False` (unhealthy) for server errors, `True` for everything else."""
        status = getattr(error, "status", None)
        return not (isinstance(status, int) and status >= self.minimum)


@tasker.hookimpl
def tasker_register_policies(registry: Registry[Any]) -> None:
    """Offer `"queue-threshold"`."""
    registry.register("queue-threshold", QueueThresholdPolicy)


@tasker.hookimpl
def tasker_register_health_checks(registry: Registry[Any]) -> None:
    """Offer `"status-5xx"`."""
    registry.register("status-5xx", StatusHealthCheck)


@tasker.hookimpl
def tasker_task_finished(outcome: str) -> None:
    """Count outcomes (an observer may take only the parameters it needs)."""
    outcomes[outcome] += 1
