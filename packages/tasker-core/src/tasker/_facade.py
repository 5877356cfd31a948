"""What both managers expose the same way: name, state, stats, metrics."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from tasker._core import Core
from tasker.metrics import TaskMetrics
from tasker.stats import ManagerState, TaskStats

__all__ = ["ManagerBase"]

R = TypeVar("R")


class ManagerBase(Generic[R]):
    """The read-only face shared by `TaskManager` and `AsyncTaskManager`."""

    __slots__ = ("_core", "_runtime")

    def __init__(self, core: Core[R], runtime: Any) -> None:
        """Internal: managers are made by their builders."""
        self._core = core
        self._runtime = runtime

    @property
    def name(self) -> str:
        """The manager's name, as it appears in logs, metrics and worker names."""
        return self._core.config.name

    @property
    def state(self) -> ManagerState:
        """The lifecycle state: running, broken, stopping, stopped or killed."""
        return self._core.state

    def stats(self) -> TaskStats:
        """A live snapshot of workers, queues and the resource pool (cheap; thread-safe)."""
        core = self._core
        config = core.config
        workers = list(core.workers)
        return TaskStats(
            base_workers=config.workers,
            active_workers=len(workers),
            burst_workers=sum(1 for w in workers if w.burst),
            max_workers=config.max_workers,
            busy_workers=sum(1 for w in workers if w.current is not None),
            queued_tasks=core.queue.main_depth,
            priority_tasks=core.queue.priority_depth,
            available_resources=core.pool.available,
            state=core.state,
            queue_limit=core.overload.limit,
            waiting_submissions=core.overload.line.waiting,
        )

    def metrics(self) -> TaskMetrics:
        """Task performance: durations with percentiles, recent rates, totals, success rate."""
        return self._core.telemetry.collector.metrics()

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<{type(self).__name__} {self.name!r} {s.state} workers={s.active_workers} "
            f"queued={s.queued_tasks + s.priority_tasks}>"
        )
