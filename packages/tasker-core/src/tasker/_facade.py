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
        return self._core.stats()

    def metrics(self) -> TaskMetrics:
        """Task performance: durations with percentiles, recent rates, totals, success rate."""
        return self._core.metrics()

    def __repr__(self) -> str:
        s = self._core.stats()
        return (
            f"<{type(self).__name__} {self.name!r} {s.state} workers={s.active_workers} "
            f"queued={s.queued_tasks + s.priority_tasks}>"
        )
