"""Scaling policies: how many workers the pool should have right now.

A policy is pure decision logic: every `interval` seconds the manager hands it a
[`ScalingSnapshot`][tasker.scaling.ScalingSnapshot] and it returns a target worker count. The
manager clamps the target to `[base_workers, max_workers]`, starts burst workers to grow, and
retires only *idle* burst workers to shrink.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tasker import _validate as validate

__all__ = [
    "AdaptivePolicy",
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
        recent_execution_time: mean run time of the attempts that succeeded over the recent
            window, in seconds (0 when none did).
        error_ratio: share of the attempts that ended over the recent window and raised
            (failed for good or retried); 0 when none ended.
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
    recent_execution_time: float = 0.0
    error_ratio: float = 0.0


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


class AdaptivePolicy(_Paced):
    """Find how many workers the downstream serves well, from run times and errors; hold there.

    For workers that share something of limited capacity (a database with a few useful
    connections, a rate-limited API), workers past that capacity only add contention: each
    call takes longer, some fail, fewer succeed per second. This policy needs no capacity
    figure: like TCP Vegas and gradient concurrency limiters, it watches the run time of
    recent attempts and their errors, and keeps the pool where run time has not started to
    rise yet.

    A decision judges the current worker count `n` once it has been in place for `settle`
    decisions (the snapshot's recent figures cover the last three) while work was waiting
    or every worker was busy:

    - the **baseline** is the lowest mean run time seen over the last `memory` seconds: what a
      call costs when the downstream is not contended; the **gradient** is the recent mean run
      time over the baseline;
    - **congested** when the gradient exceeds `1 + tolerance`, or more than `max_error_ratio`
      of the recent attempts raised. The pool then backs off multiplicatively, to
      `n × (1 + tolerance) / gradient` — the count at which run time would be back near the
      baseline — bounded to `[n / 2, n × backoff]`, and `n` becomes the **ceiling**;
    - otherwise, with work waiting, it grows: by half its size until the first congestion
      (slow start), then by one, up to one below the ceiling;
    - just below the ceiling it holds, and every `probe` seconds tries one worker more. A probe
      that finds congestion doubles that wait (up to 8 × `probe`), so a steady load sees ever
      rarer probes; a probe that finds none forgets the ceiling (the downstream got more
      capacity) and growth resumes.

    With nothing queued and idle workers it does not grow; once `cooldown` has passed since
    the last growth, it shrinks to what the measured demand needs (arrival rate × run time,
    plus a quarter), never below the busy workers.

    Args:
        interval: seconds between decisions.
        tolerance: how much the run time may exceed its baseline before it counts as rising
            (0.2 = 20 %).
        backoff: the gentlest multiplicative back-off (0.9: at least 10 % fewer workers).
        max_error_ratio: the share of attempts that may raise before the pool backs off; set it
            above the error rate your tasks have when the downstream is healthy.
        settle: decisions a worker count must be in place before it is judged.
        probe: seconds held just below the ceiling before trying one worker more.
        memory: seconds over which the baseline run time is the lowest seen.
        cooldown: seconds after a growth during which the policy does not shrink an idle pool.
    """

    __slots__ = (
        "_backoff",
        "_ceiling",
        "_level",
        "_lows",
        "_max_errors",
        "_memory",
        "_probe",
        "_probe_at",
        "_probe_wait",
        "_probing",
        "_settle",
        "_since",
        "_slow_start",
        "_target",
        "_tolerance",
    )

    def __init__(
        self,
        *,
        interval: float = 0.1,
        tolerance: float = 0.2,
        backoff: float = 0.9,
        max_error_ratio: float = 0.05,
        settle: int = 3,
        probe: float = 5.0,
        memory: float = 30.0,
        cooldown: float = 0.5,
    ) -> None:
        super().__init__(interval, cooldown)
        self._tolerance = validate.number("tolerance", tolerance, minimum=0.0, inclusive=False)
        self._backoff = validate.number("backoff", backoff, minimum=0.5)
        if self._backoff >= 1:
            raise ValueError(f"backoff must be a finite number >= 0.5 and < 1, got {backoff!r}")
        self._max_errors = validate.number("max_error_ratio", max_error_ratio, minimum=0.0)
        self._settle = validate.integer("settle", settle, minimum=1)
        self._probe = _positive("probe", probe)
        self._memory = _positive("memory", memory)
        self._lows: deque[tuple[float, float]] = deque()  # (time, run time), increasing
        self._target: int | None = None
        self._level = -1  # the worker count being measured, in place since `_since`
        self._since = -math.inf
        self._ceiling: int | None = None  # the lowest count found congested
        self._slow_start = True
        self._probe_wait = self._probe
        self._probe_at = -math.inf
        self._probing = 0  # the count a probe asked for

    @property
    def ceiling(self) -> int | None:
        """The lowest worker count found congested (and not since found fine), if any."""
        return self._ceiling

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        """Return the worker count just below where run time starts to rise."""
        s = snapshot
        n = s.workers
        if n != self._level:
            self._level, self._since = n, s.now
        if self._target is None:
            self._target = n
        saturated = s.queued_tasks > 0 or s.busy_workers >= n
        measured = s.recent_execution_time > 0 or s.error_ratio > 0
        settled = s.now - self._since >= self._settle * self._interval - 1e-9
        if not saturated:
            self._target = self._shrink(s)
        elif settled and measured:
            self._target = self._judge(s)
        return max(s.base_workers, min(s.max_workers, self._target))

    def _judge(self, s: ScalingSnapshot) -> int:
        n = s.workers
        gradient = 1.0
        if s.recent_execution_time > 0:
            gradient = s.recent_execution_time / self._baseline(s.now, s.recent_execution_time)
        if gradient > 1 + self._tolerance or s.error_ratio > self._max_errors:
            return self._back_off(s.now, n, gradient)
        if self._ceiling is not None and n >= self._ceiling:  # a probe found room
            self._ceiling = None
            self._probe_wait = self._probe
        if s.queued_tasks == 0:
            return n  # busy but nothing waits: no reason to grow
        step = max(1, n // 2) if self._slow_start else 1
        if self._ceiling is None or n + step < self._ceiling:
            return self._grow(s.now, n + step)
        if s.now >= self._probe_at and n < s.max_workers:
            self._probing = n + 1
            return self._grow(s.now, n + 1)
        return n

    def _back_off(self, now: float, n: int, gradient: float) -> int:
        self._slow_start = False
        self._ceiling = n
        if n == self._probing:  # the probe failed: probe less often
            self._probe_wait = min(2 * self._probe_wait, 8 * self._probe)
        self._probing = 0
        self._probe_at = now + self._probe_wait
        factor = min(self._backoff, max(0.5, (1 + self._tolerance) / gradient))
        return min(n - 1, math.floor(n * factor + 1e-9))  # 5 x (1.2 / 1.5) is 4, not 3.99...

    def _baseline(self, now: float, run_time: float) -> float:
        """The lowest run time of the last `memory` seconds, `run_time` (measured now) included."""
        lows = self._lows
        while lows and lows[-1][1] >= run_time:
            lows.pop()
        lows.append((now, run_time))
        while lows[0][0] < now - self._memory:
            lows.popleft()
        return lows[0][1]

    def _shrink(self, s: ScalingSnapshot) -> int:
        target = self._target if self._target is not None else s.workers
        if self._cooling(s):
            return target
        demand = math.ceil(s.arrival_rate * s.recent_execution_time * 1.25)
        return min(target, max(demand, s.busy_workers, s.base_workers))

    def __repr__(self) -> str:
        return (
            f"AdaptivePolicy(interval={self._interval}, tolerance={self._tolerance}, "
            f"backoff={self._backoff}, max_error_ratio={self._max_errors}, "
            f"settle={self._settle}, probe={self._probe}, memory={self._memory}, "
            f"cooldown={self._cooldown})"
        )


def _headroom(value: float) -> float:
    return validate.number("headroom", value, minimum=1.0)


def _positive(name: str, value: float) -> float:
    return validate.seconds(name, value)
