"""The scaler: what the scaling policy sees, and the worker count it asks for.

Once per supervisor tick the core hands the scaler its workers and queue depth; the scaler reads
the built-in metrics, asks the policy (user code, contained) and clamps its answer to
`[workers, max_workers]`. The core then decides, under its lock, whom to start or retire.

It also tells the policy what a new worker costs: how many workers are still making their
resource, and how long that took recently (a thread calling `on_create`, a process starting
its interpreter too), so that a policy neither adds more while the last ones are starting nor
retires them before they had the time to pay for themselves.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from tasker.events import Event
from tasker.scaling import ScalingSnapshot

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tasker._config import Config
    from tasker._telemetry import Telemetry
    from tasker._worker import Worker

__all__ = ["Scaler"]


class Scaler:
    """Asks one manager's scaling policy for a target worker count."""

    __slots__ = ("_config", "_startup_time", "_telemetry")

    def __init__(self, config: Config[Any], telemetry: Telemetry) -> None:
        self._config = config
        self._telemetry = telemetry
        self._startup_time = 0.0

    def started(self, seconds: float) -> None:
        """A worker made its resource in `seconds`: a moving average over the last few."""
        previous = self._startup_time
        self._startup_time = seconds if not previous else previous + (seconds - previous) / 4

    @property
    def startup_time(self) -> float:
        """Recent seconds for a new worker to make its resource (0 before the first)."""
        return self._startup_time

    def snapshot(self, workers: Sequence[Worker], queued: int) -> ScalingSnapshot:
        """What the policy sees now."""
        cfg = self._config
        collector = self._telemetry.collector
        metrics = collector.metrics()
        # the policy sees rates over the last three decisions, not the 1 s metrics window: a
        # step in the load shows within one interval instead of a second
        recent = collector.recent(window=max(3 * cfg.policy.interval, collector.window / 10))
        return ScalingSnapshot(
            now=time.monotonic(),
            base_workers=cfg.workers,
            max_workers=cfg.max_workers,
            workers=len(workers),
            busy_workers=sum(1 for w in workers if w.current is not None),
            queued_tasks=queued,
            arrival_rate=recent.arrival_rate,
            completion_rate=recent.completion_rate,
            average_execution_time=metrics.average_execution_time,
            p95_wait_time=metrics.p95_wait_time,
            starting_workers=sum(1 for w in workers if w.starting_since is not None),
            startup_time=self._startup_time,
            recent_execution_time=recent.execution_time,
            error_ratio=recent.error_ratio,
        )

    def target(self, workers: Sequence[Worker], queued: int) -> int | None:
        """The policy's target, clamped to `[workers, max_workers]`; `None` if it raised."""
        cfg = self._config
        snapshot = self.snapshot(workers, queued)
        try:
            target = int(cfg.policy.target_workers(snapshot))
        except BaseException as error:  # user code: contained, whatever it raises
            self._telemetry.log(
                logging.ERROR, Event.POLICY_FAILED, policy=repr(cfg.policy), error=error
            )
            return None
        return max(cfg.workers, min(cfg.max_workers, target))
