"""Scaling: rate-based bursting on recent rates; bursts retire only when idle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait

import pytest

from tasker import (
    Event,
    FixedPolicy,
    LatencyPolicy,
    QueueDepthPolicy,
    RatePolicy,
    ScalingSnapshot,
    TaskManager,
)
from tests.helpers import EventLog, Resource, Resources, SwitchPolicy, settle, wait_until


def snapshot(**kw: float) -> ScalingSnapshot:
    base: dict[str, float] = {
        "now": 100.0,
        "base_workers": 2,
        "max_workers": 8,
        "workers": 2,
        "busy_workers": 2,
        "queued_tasks": 0,
        "arrival_rate": 0.0,
        "completion_rate": 0.0,
        "average_execution_time": 0.0,
    }
    base.update(kw)
    return ScalingSnapshot(**base)  # type: ignore[arg-type]


class TestStartupCost:
    """A new worker costs its start-up (a process, a slow `on_create`): policies account for it."""

    def test_no_step_up_while_the_last_step_is_still_starting(self) -> None:
        waiting = {"queued_tasks": 50, "arrival_rate": 20.0, "completion_rate": 5.0}
        assert RatePolicy().target_workers(snapshot(workers=3, starting_workers=1, **waiting)) == 3
        assert (
            QueueDepthPolicy(threshold=0).target_workers(
                snapshot(workers=3, starting_workers=1, queued_tasks=50)
            )
            == 3
        )
        assert (
            LatencyPolicy().target_workers(snapshot(workers=3, starting_workers=1, queued_tasks=50))
            == 3
        )
        # once they serve, growth resumes
        assert RatePolicy().target_workers(snapshot(workers=3, **waiting)) > 3
        assert QueueDepthPolicy(threshold=0).target_workers(snapshot(queued_tasks=50)) == 3

    def test_the_demand_still_counts_while_workers_start(self) -> None:
        s = snapshot(
            workers=3,
            starting_workers=1,
            queued_tasks=50,
            arrival_rate=100.0,
            completion_rate=20.0,
            average_execution_time=0.05,
        )
        assert RatePolicy().target_workers(s) == 7  # ceil(100 x 0.05 x 1.25)

    def test_the_cooldown_counts_from_when_the_new_workers_are_up(self) -> None:
        policy = RatePolicy(cooldown=1.0)
        policy.target_workers(snapshot(queued_tasks=9, arrival_rate=50, now=10.0))
        idle = {"workers": 5, "busy_workers": 0, "startup_time": 2.0}
        assert policy.target_workers(snapshot(now=12.5, **idle)) == 5  # up since 12: keep
        assert policy.target_workers(snapshot(now=13.1, **idle)) == 2

    def test_the_snapshot_counts_starting_workers_and_measures_their_start(self) -> None:
        seen: list[ScalingSnapshot] = []
        creating = threading.Event()
        release = threading.Event()
        calls = []

        def create() -> int:
            calls.append(1)
            if len(calls) > 1:  # a burst worker's slow start
                creating.set()
                assert release.wait(10)
            return len(calls)

        class Watch:
            interval = 0.01

            def __init__(self) -> None:
                self.ticks = threading.Semaphore(0)

            def target_workers(self, snapshot: ScalingSnapshot) -> int:
                seen.append(snapshot)
                self.ticks.release()
                return 2

        policy = Watch()
        manager = (
            TaskManager.builder()
            .with_resource(create)
            .with_workers(1, max_workers=2)
            .with_resource_pool(0)
            .with_policy(policy)
            .build()
        )
        with manager:
            assert creating.wait(10)
            for _ in range(3):  # a few decisions while the burst worker starts
                assert policy.ticks.acquire(timeout=10)
            assert seen[-1].starting_workers == 1
            assert seen[-1].workers == 2
            release.set()
            assert wait_until(lambda: seen[-1].starting_workers == 0)
            assert seen[-1].startup_time > 0


class TestRatePolicy:
    def test_grows_by_the_surplus_when_work_queues_up(self) -> None:
        policy = RatePolicy()
        s = snapshot(
            workers=6,
            queued_tasks=30,
            arrival_rate=200,
            completion_rate=100,
            average_execution_time=0.02,
        )
        assert policy.target_workers(s) == 6 + 2  # 100 surplus tasks/s x 20 ms

    def test_grows_straight_to_the_demand_after_a_step(self) -> None:
        policy = RatePolicy(headroom=1.25)
        s = snapshot(
            queued_tasks=30, arrival_rate=400, completion_rate=100, average_execution_time=0.02
        )
        assert policy.target_workers(s) == 10  # 400/s x 20 ms x 1.25, not 2 + 6

    def test_grows_by_at_least_one_before_any_task_finished(self) -> None:
        s = snapshot(queued_tasks=5, arrival_rate=50)
        assert RatePolicy().target_workers(s) == 3

    def test_holds_while_arrivals_match_completions(self) -> None:
        s = snapshot(workers=4, queued_tasks=3, arrival_rate=100, completion_rate=100)
        assert RatePolicy().target_workers(s) == 4

    def test_shrinks_to_the_demand_once_nothing_is_queued(self) -> None:
        s = snapshot(workers=6, busy_workers=1, arrival_rate=100, average_execution_time=0.02)
        assert RatePolicy(headroom=1.0).target_workers(s) == 2  # 100/s x 20 ms, never below base

    def test_never_grows_when_nothing_is_queued(self) -> None:
        s = snapshot(workers=2, busy_workers=1, arrival_rate=100, average_execution_time=0.06)
        assert RatePolicy().target_workers(s) == 2

    def test_idle_means_back_to_base(self) -> None:
        assert RatePolicy().target_workers(snapshot(workers=6, busy_workers=0)) == 2

    def test_does_not_shrink_during_the_cooldown_after_growing(self) -> None:
        policy = RatePolicy(cooldown=1.0)
        policy.target_workers(snapshot(queued_tasks=9, arrival_rate=50, now=10.0))
        assert policy.target_workers(snapshot(workers=5, busy_workers=0, now=10.5)) == 5
        assert policy.target_workers(snapshot(workers=5, busy_workers=0, now=11.1)) == 2

    def test_rejects_bad_options(self) -> None:
        with pytest.raises(ValueError, match="headroom"):
            RatePolicy(headroom=0.5)

    def test_fixed_policy_never_bursts(self) -> None:
        s = snapshot(queued_tasks=100, arrival_rate=1000)
        assert FixedPolicy().target_workers(s) == 2


class TestQueueDepthPolicy:
    def test_adds_step_workers_above_the_threshold(self) -> None:
        policy = QueueDepthPolicy(threshold=10, step=3)
        assert policy.target_workers(snapshot(queued_tasks=11)) == 5
        assert policy.target_workers(snapshot(queued_tasks=10)) == 2

    def test_shrinks_to_the_busy_workers_when_empty_after_the_cooldown(self) -> None:
        policy = QueueDepthPolicy(threshold=0, cooldown=1.0)
        policy.target_workers(snapshot(queued_tasks=1, now=10.0))
        assert policy.target_workers(snapshot(workers=4, busy_workers=3, now=10.5)) == 4
        assert policy.target_workers(snapshot(workers=4, busy_workers=3, now=11.5)) == 3

    def test_rejects_bad_options(self) -> None:
        with pytest.raises(ValueError, match="step must be an integer >= 1"):
            QueueDepthPolicy(step=0)


class TestLatencyPolicy:
    def test_sizes_the_pool_by_littles_law(self) -> None:
        # 200 tasks/s x 50 ms = 10 busy workers, 20 % headroom
        s = snapshot(arrival_rate=200, average_execution_time=0.05, workers=2, max_workers=32)
        assert LatencyPolicy(target=1.0).target_workers(s) == 12

    def test_drains_a_backlog_within_the_target(self) -> None:
        # 100 queued x 20 ms within 100 ms needs 20 workers
        s = snapshot(queued_tasks=100, average_execution_time=0.02, workers=4)
        assert LatencyPolicy(target=0.1).target_workers(s) == 20

    def test_adds_a_worker_while_the_p95_wait_is_over_target(self) -> None:
        s = snapshot(queued_tasks=1, average_execution_time=0.001, workers=5, p95_wait_time=0.5)
        assert LatencyPolicy(target=0.1).target_workers(s) == 6

    def test_grows_one_at_a_time_before_anything_was_measured(self) -> None:
        assert LatencyPolicy().target_workers(snapshot(queued_tasks=3)) == 3

    def test_shrinks_when_the_demand_falls_after_the_cooldown(self) -> None:
        policy = LatencyPolicy(cooldown=0.5)
        s = snapshot(workers=8, busy_workers=1, arrival_rate=10, average_execution_time=0.01)
        assert policy.target_workers(s) == 2

    def test_registered_names_work_in_the_builder(self) -> None:
        with (
            TaskManager.builder()
            .with_workers(1, max_workers=4)
            .with_policy("latency", target=0.05)
            .build() as manager
        ):
            assert manager.queue_task(lambda r: 1) == 1
        with TaskManager.builder().with_policy("queue-depth", threshold=5).build() as manager:
            assert manager.queue_task(lambda r: 2) == 2


class Recording:
    """Keeps every snapshot it is shown."""

    interval = 0.01

    def __init__(self) -> None:
        self.snapshots: list[ScalingSnapshot] = []

    def target_workers(self, snapshot: ScalingSnapshot) -> int:
        self.snapshots.append(snapshot)
        return snapshot.workers


def gated(started: threading.Semaphore, gate: threading.Event) -> Callable[[Resource], int]:
    def task(resource: Resource) -> int:
        started.release()
        assert gate.wait(10)
        return resource.rid

    return task


class TestBursting:
    def test_rate_policy_bursts_under_load_and_retires_when_idle(
        self, resources: Resources
    ) -> None:
        log = EventLog()
        manager = (
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_workers(1, max_workers=4)
            .with_resource_pool(0)
            .with_policy("rate", interval=0.02, cooldown=0.1)
            .with_logger(log)
            .build()
        )
        with manager:
            gate = threading.Event()
            started = threading.Semaphore(0)
            futures: list[Future[int]] = [manager.submit(gated(started, gate)) for _ in range(40)]
            for _ in range(4):  # the base worker and three bursts are all busy
                assert started.acquire(timeout=10)
            assert manager.stats().burst_workers == 3
            gate.set()
            settle(*futures)
            assert wait_until(lambda: manager.stats().burst_workers == 0, timeout=10)
            assert resources.wait_for(lambda: resources.live == 1)
        assert log.named(Event.SCALED_UP)
        assert log.named(Event.SCALED_DOWN)
        resources.assert_all_destroyed_once()

    def test_busy_burst_workers_are_not_retired(self, resources: Resources) -> None:
        policy = SwitchPolicy(target=3)
        manager = (
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_workers(1, max_workers=3)
            .with_resource_pool(0)
            .with_policy(policy)
            .build()
        )
        with manager:
            assert wait_until(lambda: manager.stats().active_workers == 3)
            gate = threading.Event()
            started = threading.Semaphore(0)
            futures = [manager.submit(gated(started, gate)) for _ in range(3)]
            for _ in range(3):
                assert started.acquire(timeout=10)
            policy.target = 1
            # many scaling ticks pass while every worker is busy: nobody leaves
            assert not gate.wait(0.2)
            assert manager.stats().active_workers == 3
            gate.set()
            settle(*futures)
            assert wait_until(lambda: manager.stats().active_workers == 1)
        resources.assert_all_destroyed_once()

    def test_the_pool_never_exceeds_max_workers(self, resources: Resources) -> None:
        policy = SwitchPolicy(target=50)
        with (
            TaskManager.builder().with_workers(2, max_workers=5).with_policy(policy).build()
        ) as manager:
            assert wait_until(lambda: manager.stats().active_workers == 5)
            assert not threading.Event().wait(0.1)
            assert manager.stats().active_workers == 5

    def test_the_snapshot_carries_recent_run_time_and_errors(self) -> None:
        def work(_: object, fail: bool) -> None:
            time.sleep(0.002)  # the work itself: a measurable run time
            if fail:
                raise ValueError("overloaded")

        policy = Recording()

        def seen() -> bool:
            return any(
                s.recent_execution_time >= 0.002 and 0.2 < s.error_ratio < 0.8
                for s in list(policy.snapshots)
            )

        with TaskManager.builder().with_workers(2).with_policy(policy).build() as manager:
            for _ in range(100):  # until a decision has seen a batch within its window
                wait([manager.submit(work, i % 2 == 0) for i in range(20)], timeout=10)
                if wait_until(seen, timeout=0.2):
                    break
            assert seen()

    def test_a_failing_policy_is_logged_and_the_pool_kept(self) -> None:
        class Broken:
            interval = 0.01

            def target_workers(self, snapshot: ScalingSnapshot) -> int:
                raise ZeroDivisionError("policy bug")

        log = EventLog()
        with TaskManager.builder().with_policy(Broken()).with_logger(log).build() as manager:
            assert wait_until(lambda: bool(log.named(Event.POLICY_FAILED)))
            assert manager.queue_task(lambda r: 3) == 3
            assert manager.stats().active_workers == 1
