"""`TaskStats`: a live snapshot of a manager's workers, queues and pool."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["KillReport", "ManagerState", "TaskStats"]


class ManagerState(StrEnum):
    """The lifecycle of a manager.

    `STARTING` (inside `build()`) -> `RUNNING` -> (`BROKEN` <-> `RUNNING`) -> `STOPPING` ->
    `STOPPED`, or `KILLED` from any state but `STOPPED`. A build that fails goes from `STARTING`
    to `STOPPED`.
    `BROKEN` means no worker could create its resource for longer than allowed; the manager
    returns to `RUNNING` by itself when one succeeds.
    """

    STARTING = "starting"
    RUNNING = "running"
    BROKEN = "broken"
    STOPPING = "stopping"
    STOPPED = "stopped"
    KILLED = "killed"


@dataclass(frozen=True, slots=True)
class TaskStats:
    """Operational counts at one instant (cheap to take; take it as often as you like).

    Attributes:
        base_workers: the configured number of always-on workers.
        active_workers: workers alive now, base and burst, including any still creating their
            resource.
        burst_workers: the extra workers the scaling policy added on top of the base ones.
        max_workers: the ceiling on `active_workers`.
        busy_workers: workers running a task right now.
        queued_tasks: tasks waiting in the main queue.
        priority_tasks: tasks waiting in the priority queue.
        available_resources: pooled resources ready for `run_task`.
        state: the manager's lifecycle state.
        queue_limit: the most tasks the queues hold (`with_queue_limit`), `None`: no limit.
        waiting_submissions: submissions waiting for room in the full queues.
    """

    base_workers: int
    active_workers: int
    burst_workers: int
    max_workers: int
    busy_workers: int
    queued_tasks: int
    priority_tasks: int
    available_resources: int
    state: ManagerState
    queue_limit: int | None = None
    waiting_submissions: int = 0


@dataclass(frozen=True, slots=True)
class KillReport:
    """What `kill()` cut short.

    Attributes:
        cancelled_tasks: queued tasks that never started; their callers got `CancelledError`.
        abandoned_tasks: tasks that were running; their callers got `CancelledError` at once,
            the tasks were told to stop (`current_task().cancelled`), and each one's resource is
            destroyed when it returns.
    """

    cancelled_tasks: int
    abandoned_tasks: int
