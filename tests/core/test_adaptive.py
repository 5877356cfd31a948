"""The adaptive policy: it finds a shared downstream's capacity from run times and errors.

Pure policy tests on a simulated clock: a downstream serves up to `capacity` calls at once in
10 ms each; past that each call takes longer with the excess (2 x base at 1.5 x capacity) and
calls past twice the capacity fail. The pool is always saturated (work is queued), and it takes
the policy's target one decision later, as the manager does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise

import pytest

from tasker import AdaptivePolicy, ScalingSnapshot, TaskManager

BASE_RUN = 0.010
INTERVAL = 0.1


def run_time(workers: int, capacity: int) -> float:
    """The mean run time of a call when `workers` call a downstream of `capacity` at once."""
    excess = max(0, workers - capacity)
    return BASE_RUN * (1 + 2 * excess / capacity)


def error_ratio(workers: int, capacity: int) -> float:
    """The share of calls that fail: those past twice the capacity."""
    return max(0, workers - 2 * capacity) / workers


@dataclass
class Downstream:
    """A run of the policy against the simulated downstream, one decision per `INTERVAL`."""

    policy: AdaptivePolicy
    capacity: Callable[[float], int]
    base: int = 2
    max_workers: int = 32
    noise: float = 0.0  # relative noise on each measured run time (seeded)
    queued: int = 100
    now: float = 100.0
    workers: int = 2
    history: list[tuple[float, int]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def snapshot(self) -> ScalingSnapshot:
        capacity = self.capacity(self.now)
        measured = run_time(self.workers, capacity)
        if self.noise:
            measured *= 1 + self.rng.uniform(-self.noise, self.noise)
        return ScalingSnapshot(
            now=self.now,
            base_workers=self.base,
            max_workers=self.max_workers,
            workers=self.workers,
            busy_workers=self.workers,
            queued_tasks=self.queued,
            arrival_rate=1000.0,
            completion_rate=self.workers / measured,
            average_execution_time=measured,
            recent_execution_time=measured,
            error_ratio=error_ratio(self.workers, capacity),
        )

    def run(self, seconds: float) -> list[tuple[float, int]]:
        """Decide every interval for `seconds`; return (time, workers) for each decision."""
        steps = round(seconds / INTERVAL)
        start = len(self.history)
        for _ in range(steps):
            target = self.policy.target_workers(self.snapshot())
            assert self.base <= target <= self.max_workers
            self.history.append((self.now, self.workers))
            self.workers = target  # the manager moves the pool before the next decision
            self.now += INTERVAL
        return self.history[start:]


def at(history: list[tuple[float, int]], when: float) -> int:
    return next(n for t, n in history if abs(t - when) < 1e-6)


def first_time_at(history: list[tuple[float, int]], workers: int) -> float:
    return next(t for t, n in history if n == workers)


def direction_changes(counts: list[int]) -> int:
    signs = [1 if b > a else -1 for a, b in pairwise(counts) if b != a]
    return sum(1 for a, b in pairwise(signs) if a != b)


class TestConvergence:
    def test_grows_while_run_time_stays_flat(self) -> None:
        sim = Downstream(AdaptivePolicy(), capacity=lambda _: 100)
        sim.run(5)
        assert sim.workers == 32  # no contention anywhere: up to max_workers

    def test_settles_at_the_capacity_from_two_workers(self) -> None:
        sim = Downstream(AdaptivePolicy(), capacity=lambda _: 8)
        history = sim.run(30)
        start = history[0][0]
        assert first_time_at(history, 8) - start <= 5.0
        late = [n for t, n in history if t - start >= 5.0]
        assert min(late) == 8  # never below the capacity once found
        assert max(late) <= 9  # only a probe goes past it
        # rarely: a probe lasts until its count settles (4 decisions), and each failed probe
        # doubles the wait for the next (5 s, 10 s, 20 s)
        assert late.count(9) <= 2 * 4

    def test_probes_grow_rarer_in_steady_load(self) -> None:
        sim = Downstream(AdaptivePolicy(probe=1.0), capacity=lambda _: 8)
        history = sim.run(60)
        probes = [t for (t, n), (_, m) in pairwise(history) if n == 8 and m == 9]
        gaps = [b - a for a, b in pairwise(probes)]
        assert len(gaps) >= 3
        assert all(b >= a for a, b in pairwise(gaps))  # each failed probe doubles the wait
        assert gaps[-1] >= 8 * 1.0 - 1e-9  # up to 8 x probe

    def test_holds_through_noisy_run_times(self) -> None:
        sim = Downstream(AdaptivePolicy(), capacity=lambda _: 8, noise=0.05)
        history = sim.run(40)
        late = [n for t, n in history if t - history[0][0] >= 5.0]
        assert min(late) >= 7
        assert direction_changes(late) <= 6  # at most a few probes: no flapping

    def test_re_converges_after_the_capacity_drops(self) -> None:
        sim = Downstream(AdaptivePolicy(), capacity=lambda t: 8 if t < 110.0 else 4)
        history = sim.run(20)
        assert at(history, 109.9) in (8, 9)
        after = [(t, n) for t, n in history if t >= 110.0]
        settled = next(t for t, n in after if n == 4)
        assert settled - 110.0 <= 3.0
        assert all(n <= 5 for t, n in after if t >= settled)

    def test_re_converges_after_the_capacity_rises(self) -> None:
        policy = AdaptivePolicy(probe=2.0)
        sim = Downstream(policy, capacity=lambda t: 4 if t < 110.0 else 8)
        history = sim.run(30)
        assert at(history, 109.9) in (4, 5)
        after = [(t, n) for t, n in history if t >= 110.0]
        # found at the next probe, which waits at most 8 x probe
        assert first_time_at(after, 8) - 110.0 <= 8 * 2.0 + 3.0
        assert min(n for t, n in after if t >= 128.0) >= 8

    def test_stays_within_base_and_max_workers(self) -> None:
        sim = Downstream(AdaptivePolicy(), capacity=lambda _: 1, base=3, max_workers=6)
        sim.workers = 3
        history = sim.run(10)
        assert {n for _, n in history} == {3}  # congested at the base: it cannot go lower


class TestOneDecision:
    """Each decision on its own: a policy primed at `workers` with a 10 ms baseline."""

    @staticmethod
    def primed(workers: int, **options: float) -> AdaptivePolicy:
        policy = AdaptivePolicy(**options)  # type: ignore[arg-type]
        for i in range(4):  # settled at `workers`, run time at the baseline
            policy.target_workers(saturated(now=i * INTERVAL, workers=workers, run=BASE_RUN))
        return policy

    def test_backs_off_by_the_gradient_down_to_half(self) -> None:
        policy = self.primed(8, probe=100.0)
        for i in range(4, 8):  # the count changes to 16 and settles there
            s = saturated(now=i * INTERVAL, workers=16, run=3 * BASE_RUN)
            target = policy.target_workers(s)
        assert target == 8  # 16 x (1.2 / 3) = 6.4, but never below half
        assert policy.ceiling == 16

    def test_a_small_rise_backs_off_by_backoff(self) -> None:
        policy = self.primed(10)
        s = saturated(now=0.5, workers=10, run=1.25 * BASE_RUN)
        assert policy.target_workers(s) == 9  # 10 x 0.9
        assert policy.ceiling == 10

    def test_a_rise_within_tolerance_is_flat(self) -> None:
        policy = self.primed(10, tolerance=0.3)
        assert policy.target_workers(saturated(now=0.5, workers=10, run=1.25 * BASE_RUN)) > 10

    def test_errors_back_off_even_with_flat_run_times(self) -> None:
        policy = self.primed(10)
        s = saturated(now=0.5, workers=10, run=BASE_RUN, errors=0.2)
        assert policy.target_workers(s) == 9

    def test_errors_below_the_threshold_are_ignored(self) -> None:
        policy = self.primed(10, max_error_ratio=0.3)
        s = saturated(now=0.5, workers=10, run=BASE_RUN, errors=0.2)
        assert policy.target_workers(s) > 10

    def test_a_new_count_is_not_judged_before_it_settles(self) -> None:
        policy = self.primed(4)
        grown = policy.target_workers(saturated(now=0.4, workers=4, run=BASE_RUN))
        assert grown > 4
        # the old count's figures still fill the window: hold the ask, whatever they say
        for now in (0.5, 0.6, 0.7):
            s = saturated(now=now, workers=grown, run=5 * BASE_RUN)
            assert policy.target_workers(s) == grown
        assert policy.target_workers(saturated(now=0.8, workers=grown, run=5 * BASE_RUN)) < grown

    def test_nothing_measured_holds(self) -> None:
        policy = AdaptivePolicy()
        for i in range(5):
            assert policy.target_workers(saturated(now=i * INTERVAL, workers=4, run=0.0)) == 4

    def test_does_not_grow_without_queued_work(self) -> None:
        policy = self.primed(4)
        s = saturated(now=0.5, workers=4, run=BASE_RUN, queued=0)
        assert policy.target_workers(s) == 4

    def test_an_idle_pool_shrinks_to_the_demand_after_the_cooldown(self) -> None:
        policy = self.primed(6, cooldown=0.5)
        assert policy.target_workers(saturated(now=0.4, workers=6, run=BASE_RUN)) > 6  # grows
        idle = replace(
            saturated(now=0.5, workers=9, run=BASE_RUN, queued=0),
            busy_workers=1,
            arrival_rate=200.0,
        )
        assert policy.target_workers(idle) == 9  # cooling down after the growth
        # 200 tasks/s x 10 ms x 1.25 = 2.5: three workers
        assert policy.target_workers(replace(idle, now=1.0)) == 3

    def test_rejects_bad_options(self) -> None:
        with pytest.raises(ValueError, match=r"backoff must be .* < 1"):
            AdaptivePolicy(backoff=1.0)
        with pytest.raises(ValueError, match="settle must be an integer >= 1"):
            AdaptivePolicy(settle=0)
        with pytest.raises(ValueError, match="tolerance must be"):
            AdaptivePolicy(tolerance=0)

    def test_repr_names_every_knob(self) -> None:
        text = repr(AdaptivePolicy(tolerance=0.3))
        for knob in ("tolerance=0.3", "backoff", "max_error_ratio", "settle", "probe", "memory"):
            assert knob in text


def saturated(
    *, now: float, workers: int, run: float, errors: float = 0.0, queued: int = 50
) -> ScalingSnapshot:
    return ScalingSnapshot(
        now=now,
        base_workers=2,
        max_workers=32,
        workers=workers,
        busy_workers=workers,
        queued_tasks=queued,
        arrival_rate=1000.0,
        completion_rate=workers / run if run else 0.0,
        average_execution_time=run,
        recent_execution_time=run,
        error_ratio=errors,
    )


def test_adaptive_is_a_builtin_name() -> None:
    with (
        TaskManager.builder()
        .with_workers(1, max_workers=4)
        .with_policy("adaptive", tolerance=0.3, probe=2.0)
        .build() as manager
    ):
        assert manager.queue_task(lambda r: 1) == 1
