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

from tasker import _validate as validate

__all__ = [
    "FixedPolicy",
    "LatencyPolicy",
    "QueueDepthPolicy",
    "RatePolicy",
    "ScalingPolicy",
    "ScalingSnapshot",
]


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
        p95_wait_time: 95th percentile of the time tasks waited in a queue, so far.
        starting_workers: workers counted in `workers` that are still making their resource
            (a burst or a replacement; a new process for the process executor): capacity on
            its way, not yet serving.
        startup_time: recent seconds a new worker took to make its resource (0 before the
            first): what adding a worker costs before it serves.
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
    p95_wait_time: float = 0.0
    starting_workers: int = 0
    startup_time: float = 0.0


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


class _Paced:
    """Pacing shared by the adaptive policies.

    A decision every `interval` seconds, and no shrinking for `cooldown` seconds after growing,
    so that a burst is not undone by the lull it created. Two rules account for what a new
    worker costs (`ScalingSnapshot.starting_workers`, `startup_time`): no step up while
    workers are still starting (their capacity is on its way), and the cooldown counts from
    when they are up (`cooldown + startup_time` after growing).
    """

    __slots__ = ("_cooldown", "_grown_at", "_interval")

    def __init__(self, interval: float, cooldown: float) -> None:
        self._interval = _positive("interval", interval)
        self._cooldown = validate.seconds("cooldown", cooldown, allow_zero=True)
        self._grown_at = -math.inf

    @property
    def interval(self) -> float:
        """Seconds between two decisions."""
        return self._interval

    def _grow(self, now: float, target: int) -> int:
        self._grown_at = now
        return target

    def _cooling(self, snapshot: ScalingSnapshot) -> bool:
        return snapshot.now - self._grown_at < self._cooldown + snapshot.startup_time


class RatePolicy(_Paced):
    """The seed's rate-based bursting, on recent rates.

    Grows when work is queued and tasks arrive faster than they complete: by enough workers to
    absorb the surplus (`surplus × average execution time`, at least one), and at once to the
    demand (`arrival rate × average execution time`, with `headroom`) when that is more.
    Shrinks towards the demand once nothing is queued, but never sooner than `cooldown` seconds
    after growing, so a burst is not undone by the lull it created. The manager feeds it
    rates over the last three intervals, so a step in the load shows within one decision.

    Args:
        interval: seconds between decisions (the seed's 100 ms by default).
        tolerance: how much faster arrivals must be than completions to grow (0.1 = 10 %).
        headroom: spare capacity kept when shrinking (1.25 = 25 % above the measured demand).
        cooldown: seconds after a growth during which the policy does not shrink.
    """

    __slots__ = ("_headroom", "_tolerance")

    def __init__(
        self,
        *,
        interval: float = 0.1,
        tolerance: float = 0.1,
        headroom: float = 1.25,
        cooldown: float = 0.5,
    ) -> None:
        super().__init__(interval, cooldown)
        self._tolerance = validate.number("tolerance", tolerance, minimum=0.0)
        self._headroom = _headroom(headroom)

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        """Return the worker count that matches recent arrivals."""
        s = snapshot
        if s.queued_tasks > 0 and s.arrival_rate > s.completion_rate * (1 + self._tolerance):
            service = s.average_execution_time
            surplus = s.arrival_rate - s.completion_rate
            extra = math.ceil(surplus * service) if service else 1
            # never below what the arrivals need: one step reaches the demand
            demand = math.ceil(s.arrival_rate * service * self._headroom)
            if s.starting_workers:  # the last step is still starting: only the demand counts
                return self._grow(s.now, demand) if demand > s.workers else s.workers
            return self._grow(s.now, max(s.workers + max(1, extra), demand))
        if s.queued_tasks == 0 and not self._cooling(s):
            demand = math.ceil(s.arrival_rate * s.average_execution_time * self._headroom)
            return min(s.workers, max(demand, s.busy_workers, s.base_workers))
        return s.workers

    def __repr__(self) -> str:
        return (
            f"RatePolicy(interval={self._interval}, tolerance={self._tolerance}, "
            f"headroom={self._headroom}, cooldown={self._cooldown})"
        )


class QueueDepthPolicy(_Paced):
    """The Go library's older rule: burst by `step` workers when more than `threshold` wait.

    Shrinks back to the busy workers once the queues are empty, not sooner than `cooldown`
    seconds after growing.

    Args:
        threshold: queued tasks (both queues) above which the pool grows.
        step: workers added per decision while above the threshold.
        interval: seconds between decisions.
        cooldown: seconds after a growth during which the policy does not shrink.
    """

    __slots__ = ("_step", "_threshold")

    def __init__(
        self, *, threshold: int = 10, step: int = 1, interval: float = 0.1, cooldown: float = 0.5
    ) -> None:
        validate.integer("threshold", threshold, minimum=0)
        validate.integer("step", step, minimum=1)
        super().__init__(interval, cooldown)
        self._threshold = threshold
        self._step = step

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        """Grow by `step` above the threshold; fall back to the busy workers when idle."""
        s = snapshot
        if s.queued_tasks > self._threshold:
            if s.starting_workers:  # the last step is still starting
                return s.workers
            return self._grow(s.now, s.workers + self._step)
        if s.queued_tasks == 0 and not self._cooling(s):
            return max(s.busy_workers, s.base_workers)
        return s.workers

    def __repr__(self) -> str:
        return f"QueueDepthPolicy(threshold={self._threshold}, step={self._step})"


class LatencyPolicy(_Paced):
    """Keep the p95 queue wait under `target` seconds, sizing the pool by Little's law.

    Workers needed = the larger of the steady demand, `arrival rate × mean execution time ×
    headroom`, and what drains the current backlog within the target, `queued × mean execution
    time / target`. When the measured p95 wait exceeds the target anyway, one more worker is
    added. Shrinking waits for `cooldown` seconds after a growth and never retires busy workers.

    Args:
        target: the queue wait, in seconds, the p95 should stay under.
        headroom: spare capacity over the measured demand (1.2 = 20 %).
        interval: seconds between decisions.
        cooldown: seconds after a growth during which the policy does not shrink.
    """

    __slots__ = ("_headroom", "_target")

    def __init__(
        self,
        *,
        target: float = 0.1,
        headroom: float = 1.2,
        interval: float = 0.1,
        cooldown: float = 0.5,
    ) -> None:
        super().__init__(interval, cooldown)
        self._target = _positive("target", target)
        self._headroom = _headroom(headroom)

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        """Return the workers that keep the p95 queue wait under the target."""
        s = snapshot
        service = s.average_execution_time
        if service <= 0:  # nothing measured yet: grow one at a time while work waits
            wanted = s.workers + 1 if s.queued_tasks and not s.starting_workers else s.workers
        else:
            steady = math.ceil(s.arrival_rate * service * self._headroom)
            backlog = math.ceil(s.queued_tasks * service / self._target)
            wanted = max(steady, backlog, s.busy_workers, s.base_workers)
            if s.p95_wait_time > self._target and s.queued_tasks and not s.starting_workers:
                wanted = max(wanted, s.workers + 1)
        if wanted > s.workers:
            return self._grow(s.now, wanted)
        return s.workers if self._cooling(s) else wanted

    def __repr__(self) -> str:
        return f"LatencyPolicy(target={self._target}, headroom={self._headroom})"


def _headroom(value: float) -> float:
    return validate.number("headroom", value, minimum=1.0)


def _positive(name: str, value: float) -> float:
    return validate.seconds(name, value)
