"""A worker slot, as the engine tracks it (the loops live in the runtimes)."""

from __future__ import annotations

import time
from typing import Any

from tasker._task import TaskRecord

__all__ = ["Worker"]


class Worker:
    """One worker: its id (new after each replacement), resource, current task and handle."""

    __slots__ = (
        "ahead",
        "burst",
        "current",
        "handle",
        "handoff",
        "interrupted",
        "leaving",
        "parked",
        "place",
        "resource",
        "starting_since",
        "wakeup",
        "worker_id",
    )

    def __init__(self, worker_id: int, *, burst: bool) -> None:
        self.worker_id = worker_id
        self.burst = burst
        self.current: TaskRecord[Any] | None = None
        # claimed to run after `current` and already handed to a place that sends tasks ahead
        self.ahead: TaskRecord[Any] | None = None
        self.resource: Any = None
        self.place: Any = None  # where the resource lives (see `tasker.executors.Place`)
        self.handle: Any = None  # the thread or asyncio task running the worker's loop
        self.leaving = False  # told to leave: an `EXIT` token, or retired while idle
        # an idle worker parks (see `tasker._parking`): its own wake-up, of its runtime's kind,
        # and what the one who took it off the parked list left for it (a task, or `LOOK`)
        self.wakeup: Any = None
        self.parked = False  # parked, and not yet back from its wait
        self.handoff: Any = None
        self.interrupted = False  # asyncio: the current attempt was cancelled on purpose
        # while its resource is being made (first, or after a replacement): since when
        self.starting_since: float | None = time.monotonic()
