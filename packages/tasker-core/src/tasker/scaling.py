"""Scaling policies: how many workers the pool should have right now.

A policy is pure decision logic: every `interval` seconds the manager hands it a
[`ScalingSnapshot`][tasker.scaling.ScalingSnapshot] and it returns a target worker count. The
manager clamps the target to `[base_workers, max_workers]`, starts burst workers to grow, and
retires only *idle* burst workers to shrink.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["FixedPolicy", "RatePolicy", "ScalingPolicy", "ScalingSnapshot"]


@dataclass(frozen=True, slots=True)
class ScalingSnapshot:
    """What a policy sees at each tick. Rates are over the recent window, in tasks/second.

    Attributes:
        now: a monotonic timestamp, in seconds.
        base_workers: the configured always-on workers (the lowest target honoured).
        max_workers: the highest target honoured.
        workers: workers alive now (base + burst).
        busy_workers: workers running a task.
        queued_tasks: tasks waiting, in both queues.
        arrival_rate: recent submissions per second.
        completion_rate: recent finished tasks per second.
        average_execution_time: mean seconds per task so far (0 before the first).
    """

    now: float
    base_workers: int
    max_workers: int
    workers: int
    busy_workers: int
    queued_tasks: int
    arrival_rate: float
    completion_rate: float
    average_execution_time: float


@runtime_checkable
class ScalingPolicy(Protocol):
    """**Protocol**: decides the pool's size from a snapshot.

    `interval` is how often, in seconds, the manager asks. `target_workers` must be fast and must
    not block; it may keep state between calls (a cooldown, a smoothed value). An exception is
    logged and the pool keeps its size.
    """

    @property
    def interval(self) -> float:
        """Seconds between two decisions."""
        ...

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        """Return how many workers the pool should have."""
        ...


class FixedPolicy:
    """Never bursts: the pool stays at its base size."""

    __slots__ = ("_interval",)

    def __init__(self, *, interval: float = 0.1) -> None:
        self._interval = _positive("interval", interval)

    @property
    def interval(self) -> float:
        """Seconds between two decisions."""
        return self._interval

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        """Return the base worker count."""
        return snapshot.base_workers

    def __repr__(self) -> str:
        return "FixedPolicy()"


class RatePolicy:
    """The seed's rate-based bursting, on recent rates.

    Grows when work is queued and tasks arrive faster than they complete: by enough workers to
    absorb the surplus (`surplus × average execution time`, at least one). Shrinks towards the
    demand (`arrival rate × average execution time`, with `headroom`) once nothing is queued,
    but never sooner than `cooldown` seconds after growing, so a burst is not undone by the
    lull it created.

    Args:
        interval: seconds between decisions (the seed's 100 ms by default).
        tolerance: how much faster arrivals must be than completions to grow (0.1 = 10 %).
        headroom: spare capacity kept when shrinking (1.25 = 25 % above the measured demand).
        cooldown: seconds after a growth during which the policy does not shrink.
    """

    __slots__ = ("_cooldown", "_grown_at", "_headroom", "_interval", "_tolerance")

    def __init__(
        self,
        *,
        interval: float = 0.1,
        tolerance: float = 0.1,
        headroom: float = 1.25,
        cooldown: float = 0.5,
    ) -> None:
        self._interval = _positive("interval", interval)
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
        if headroom < 1:
            raise ValueError(f"headroom must be >= 1, got {headroom!r}")
        if cooldown < 0:
            raise ValueError(f"cooldown must be >= 0 seconds, got {cooldown!r}")
        self._tolerance = tolerance
        self._headroom = headroom
        self._cooldown = cooldown
        self._grown_at = -math.inf

    @property
    def interval(self) -> float:
        """Seconds between two decisions."""
        return self._interval

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        """Return the worker count that matches recent arrivals."""
        s = snapshot
        if s.queued_tasks > 0 and s.arrival_rate > s.completion_rate * (1 + self._tolerance):
            surplus = s.arrival_rate - s.completion_rate
            extra = math.ceil(surplus * s.average_execution_time) if s.average_execution_time else 1
            self._grown_at = s.now
            return s.workers + max(1, extra)
        if s.queued_tasks == 0 and s.now - self._grown_at >= self._cooldown:
            demand = math.ceil(s.arrival_rate * s.average_execution_time * self._headroom)
            return min(s.workers, max(demand, s.busy_workers, s.base_workers))
        return s.workers

    def __repr__(self) -> str:
        return (
            f"RatePolicy(interval={self._interval}, tolerance={self._tolerance}, "
            f"headroom={self._headroom}, cooldown={self._cooldown})"
        )


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
