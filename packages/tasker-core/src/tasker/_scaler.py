"""The scaler: what the scaling policy sees, and the worker count it asks for.

Once per supervisor tick the core hands the scaler its workers and queue depth; the scaler reads
the built-in metrics, asks the policy (user code, contained) and clamps its answer to
`[workers, max_workers]`. The core then decides, under its lock, whom to start or retire.
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

    __slots__ = ("_config", "_telemetry")

    def __init__(self, config: Config[Any], telemetry: Telemetry) -> None:
        self._config = config
        self._telemetry = telemetry

    def snapshot(self, workers: Sequence[Worker], queued: int) -> ScalingSnapshot:
        """What the policy sees now."""
        cfg = self._config
        collector = self._telemetry.collector
        metrics = collector.metrics()
        # the policy sees rates over the last three decisions, not the 1 s metrics window: a
        # step in the load shows within one interval instead of a second
        arrival_rate, completion_rate = collector.rates(
            window=max(3 * cfg.policy.interval, collector.window / 10)
        )
        return ScalingSnapshot(
            now=time.monotonic(),
            base_workers=cfg.workers,
            max_workers=cfg.max_workers,
            workers=len(workers),
            busy_workers=sum(1 for w in workers if w.current is not None),
            queued_tasks=queued,
            arrival_rate=arrival_rate,
            completion_rate=completion_rate,
            average_execution_time=metrics.average_execution_time,
            p95_wait_time=metrics.p95_wait_time,
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
