"""One task lifecycle: every task ends once, nothing holds a settled task, kill counts all."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import random
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pluggy
import pytest

from tasker import (
    AsyncTaskManager,
    CancelledError,
    Event,
    KillReport,
    ResourceCreationError,
    RetriesExhaustedError,
    TaskManager,
)
from tasker.plugins import PluginError
from tests.drivers import Driver, each_executor
from tests.helpers import EventLog, Resource, Resources, build, builder, wait_until

hookimpl = pluggy.HookimplMarker("tasker")


class Big:
    """A result large enough to be worth freeing, and weakly referenceable."""


class TestNothingHoldsASettledTask:
    def test_a_thread_result_dies_with_its_last_reference(self, resources: Resources) -> None:
        with build(resources) as manager:
            future = manager.submit(lambda r: Big())
            result = future.result(10)
            alive = weakref.ref(result)
            del result, future
            gc.collect()
            assert alive() is None

    def test_a_thread_result_with_a_timeout_dies_with_its_last_reference(
        self, resources: Resources
    ) -> None:
        with builder(resources).with_timeout(3600).build() as manager:
            future = manager.submit(lambda r: Big())
            result = future.result(10)
            alive = weakref.ref(result)
            del result, future
            gc.collect()
            assert alive() is None

    def test_an_asyncio_result_dies_with_its_last_reference(self, resources: Resources) -> None:
        async def main() -> None:
            manager = await (
                AsyncTaskManager.builder()
                .with_resource(resources.create, resources.destroy)
                .with_workers(1, max_workers=1)
                .with_resource_pool(0)
                .with_policy("fixed")
                .build()
            )

            async def make(resource: Resource) -> Big:
                await asyncio.sleep(0)
                return Big()

            for timeout in (None, 3600.0):
                result = await manager.submit(make, timeout=timeout)
                alive = weakref.ref(result)
                del result
                for _ in range(3):
                    await asyncio.sleep(0)
                gc.collect()
                assert alive() is None, f"timeout={timeout}"
            await manager.stop()

        asyncio.run(asyncio.wait_for(main(), 30))


class TestIdleWorkersTakeTheirTasks:
    def test_a_task_that_finds_an_idle_worker_runs_even_if_queued_tasks_are_cancelled(
        self, resources: Resources
    ) -> None:
        gate = threading.Event()
        manager = build(resources, 5)
        assert wait_until(lambda: len(manager._core._parked) == 5)  # every worker waits
        executor = manager.as_executor()
        futures = [executor.submit(lambda: gate.wait(10)) for _ in range(50)]
        assert all(f.running() for f in futures[:5])  # handed to a worker as submitted
        executor.shutdown(wait=False, cancel_futures=True)
        gate.set()
        assert manager.join(10)
        outcomes = Counter("cancelled" if f.cancelled() else "ran" for f in futures)
        assert outcomes == {"ran": 5, "cancelled": 45}


class TestPluginHookOrder:
    def test_hooks_run_in_pluggys_order(self, resources: Resources) -> None:
        calls: list[str] = []

        class First:
            @hookimpl(tryfirst=True)
            def tasker_task_queued(self, manager: str, task: Any) -> None:
                calls.append("tryfirst")

        class Plain:
            @hookimpl
            def tasker_task_queued(self, manager: str, task: Any) -> None:
                calls.append("plain")

        class Later:
            @hookimpl
            def tasker_task_queued(self, manager: str, task: Any) -> None:
                calls.append("registered later")

        class Last:
            @hookimpl(trylast=True)
            def tasker_task_queued(self, manager: str, task: Any) -> None:
                calls.append("trylast")

        with builder(resources).with_plugins(Last(), First(), Plain(), Later()).build() as manager:
            manager.queue_task(lambda r: None)
        # pluggy calls the last registered first, tryfirst before and trylast after the rest
        assert calls == ["tryfirst", "registered later", "plain", "trylast"]

    @pytest.mark.parametrize("kind", ["wrapper", "hookwrapper"])
    def test_a_wrapper_is_refused_at_registration(self, resources: Resources, kind: str) -> None:
        marker = hookimpl(wrapper=True) if kind == "wrapper" else hookimpl(hookwrapper=True)

        class Wrapping:
            @marker
            def tasker_task_queued(self, manager: str, task: Any) -> Iterator[None]:
                yield

        with pytest.raises(PluginError, match=r"tasker_task_queued.*wrapper"):
            builder(resources).with_plugins(Wrapping()).build()


class RaisingLogger:
    def log(self, level: int, event: str, /, **fields: object) -> None:
        raise RuntimeError("the logger is down")


class RaisingCollector:
    # each method spelled out: from Python 3.12 a runtime-checkable protocol looks methods up
    # statically, so `__getattr__` would not make this a collector
    def record_arrival(self, *args: object) -> None:
        raise RuntimeError("collector record_arrival is down")

    def record_start(self, *args: object) -> None:
        raise RuntimeError("collector record_start is down")

    def record_completion(self, *args: object) -> None:
        raise RuntimeError("collector record_completion is down")

    def record_failure(self, *args: object) -> None:
        raise RuntimeError("collector record_failure is down")

    def record_retry(self, *args: object) -> None:
        raise RuntimeError("collector record_retry is down")


class TestFaultsNeverLoseTasks:
    def test_a_raising_logger_and_a_raising_health_check_answer_every_caller(
        self, resources: Resources
    ) -> None:
        def check(error: BaseException) -> bool:
            raise ValueError("the health check is down")

        def fails(resource: Resource) -> None:
            raise ConnectionError("boom")

        manager = (
            builder(resources, 2).with_logger(RaisingLogger()).with_health_check(check).build()
        )
        futures = [manager.submit(fails) for _ in range(60)]
        for future in futures:
            assert isinstance(future.exception(10), ConnectionError | RetriesExhaustedError)
        assert manager.stop(10)
        resources.assert_all_destroyed_once()

    def test_a_raising_logger_and_a_raising_collector_never_break_submit(
        self, resources: Resources
    ) -> None:
        manager = (
            builder(resources).with_logger(RaisingLogger()).with_metrics(RaisingCollector()).build()
        )
        futures = [manager.submit(lambda r: 7) for _ in range(20)]
        assert [f.result(10) for f in futures] == [7] * 20
        assert manager.stop(10)


class TestKillCountsEveryTask:
    def test_kill_between_a_failed_attempt_and_its_retry_cancels_and_counts_it(
        self, resources: Resources
    ) -> None:
        reports = []
        manager: TaskManager[Resource]

        def check(error: BaseException) -> bool:
            reports.append(manager.kill())
            return False  # unhealthy: the task would be retried

        def breaks(resource: Resource) -> None:
            raise ConnectionError("lost")

        manager = builder(resources, max_retries=3).with_health_check(check).build()
        future = manager.submit(breaks)
        with pytest.raises(CancelledError):
            future.result(10)
        assert future.cancelled()
        assert manager.join(10)
        assert reports[0].cancelled_tasks + reports[0].abandoned_tasks == 1


class TestArrivals:
    def test_only_accepted_tasks_arrive(self, resources: Resources) -> None:
        manager = build(resources, 2)
        accepted = Counter[int]()
        start = threading.Barrier(5)

        def produce(n: int) -> None:
            start.wait(10)
            while True:
                try:
                    manager.submit(lambda r: None)
                except RuntimeError:
                    return
                accepted[n] += 1

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        start.wait(10)
        time.sleep(0.01)  # not synchronisation: only lets the producers submit a while
        assert manager.stop(10)
        for thread in threads:
            thread.join(10)
        assert manager.metrics().total_tasks_arrived == sum(accepted.values())


@each_executor
async def test_the_kill_report_and_the_observers_count_every_cancelled_task(
    driver: Driver,
) -> None:
    finished: Counter[str] = Counter()
    lock = threading.Lock()

    class Watch:
        @hookimpl
        def tasker_task_finished(
            self, manager: str, task: Any, outcome: str, error: BaseException | None
        ) -> None:
            with lock:
                finished[outcome] += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(30 // driver.patience):  # each round starts processes, if any
            finished.clear()
            resources = driver.resources()
            managed = await driver.build(builder(resources, 2).with_plugins(Watch()))
            futures = [managed.submit(driver.task(lambda r: None)) for _ in range(50)]
            await asyncio.sleep(random.random() * 0.002)
            report = await managed.kill()
            assert await managed.join(10)
            cancelled = sum(1 for f in futures if f.cancelled())
            assert all(f.done() for f in futures)
            assert report.cancelled_tasks + report.abandoned_tasks == cancelled
            assert finished["cancelled"] == cancelled
            assert finished["completed"] + cancelled == len(futures)
            driver.assert_destroyed_after_kill(resources, report.abandoned_tasks)
    finally:
        sys.setswitchinterval(interval)


def _time_cancels(futures: list[Any]) -> float:
    """CPU seconds per `cancel()` over `futures`, in random order, with the collector paused.

    The thread's CPU time, not the wall clock: on a loaded machine, time spent waiting for a
    core would otherwise count as the cost of a cancel.
    """
    random.shuffle(futures)
    gc.collect()
    gc.disable()
    try:
        begin = time.thread_time()
        for future in futures:
            future.cancel()
        return (time.thread_time() - begin) / len(futures)
    finally:
        gc.enable()


class TestCancellationCost:
    """A cancel used to scan its queue: 20x the depth cost each cancel ~10x as much."""

    def test_cancelling_a_thread_task_costs_the_same_at_any_depth(self) -> None:
        def per_cancel(count: int) -> float:
            resources, gate = Resources(), threading.Event()
            manager = build(resources)
            running = manager.submit(lambda r: gate.wait(10))
            futures = [manager.submit(lambda r: None) for _ in range(count)]
            cost = _time_cancels(futures)
            gate.set()
            running.result(10)
            assert manager.stop(10)
            return cost

        small = min(per_cancel(1_000) for _ in range(3))
        large = min(per_cancel(20_000) for _ in range(3))
        assert large < 4 * small, (small, large)

    def test_cancelling_an_asyncio_task_costs_the_same_at_any_depth(self) -> None:
        async def per_cancel(count: int) -> float:
            resources, gate = Resources(), asyncio.Event()
            manager = await (
                AsyncTaskManager.builder()
                .with_resource(resources.create, resources.destroy)
                .with_workers(1, max_workers=1)
                .with_resource_pool(0)
                .with_policy("fixed")
                .build()
            )

            async def hold(resource: Resource) -> None:
                await asyncio.wait_for(gate.wait(), 10)

            async def nothing(resource: Resource) -> None:
                pass

            running = manager.submit(hold)
            await asyncio.sleep(0)
            futures = [manager.submit(nothing) for _ in range(count)]
            cost = _time_cancels(futures)
            gate.set()
            await running
            assert await manager.stop(10)
            return cost

        async def main() -> tuple[float, float]:
            small = min([await per_cancel(1_000) for _ in range(3)])
            large = min([await per_cancel(20_000) for _ in range(3)])
            return small, large

        small, large = asyncio.run(asyncio.wait_for(main(), 50))
        assert large < 4 * small, (small, large)


class Fatal(BaseException):
    """Not an `Exception`: what a careless hook might raise (like SystemExit)."""


@pytest.mark.parametrize("raised", [Fatal, KeyboardInterrupt, SystemExit])
@each_executor
async def test_a_base_exception_from_on_create_fails_the_build(
    driver: Driver, raised: type[BaseException]
) -> None:
    def second_fails(n: int) -> bool:  # counted atomically, wherever the workers start
        if n == 2:
            raise raised("no")
        return False

    resources = driver.resources(fail_create=second_fails)
    with pytest.raises(ResourceCreationError):
        await driver.build(builder(resources, 2))
    resources.assert_all_destroyed_once()


@each_executor
async def test_a_health_check_that_raises_is_logged_and_still_answers_the_caller(
    driver: Driver,
) -> None:
    resources = driver.resources()
    log = EventLog()

    def check(error: BaseException) -> bool:  # even a `BaseException` is contained
        raise Fatal("check")

    def fails(resource: Resource) -> None:
        raise ConnectionError("boom")

    managed = await driver.build(builder(resources).with_health_check(check).with_logger(log))
    with pytest.raises(ConnectionError):  # the broken check counts as "healthy"
        await managed.submit(driver.task(fails))
    assert await managed.queue_task(driver.task(lambda r: 5)) == 5
    assert len(log.named(Event.HEALTH_CHECK_FAILED)) == 1
    assert len(resources.created) == 1  # nothing replaced
    assert await managed.stop(10)
    resources.assert_all_destroyed_once()


@each_executor
async def test_a_base_exception_from_on_destroy_never_stops_the_shutdown(driver: Driver) -> None:
    resources = driver.resources()

    def destroy(resource: Resource) -> None:
        resources.destroy(resource)
        raise Fatal("destroy")

    managed = await driver.build(
        TaskManager.builder()
        .with_resource(resources.create, destroy)
        .with_workers(1, max_workers=1)
        .with_resource_pool(2)
        .with_policy("fixed")
    )
    assert await managed.queue_task(driver.task(lambda r: 1)) == 1
    assert await managed.stop(10)
    resources.assert_all_destroyed_once()


@pytest.mark.parametrize("pool", [0, 1])
def test_stop_waits_for_a_run_task_resource(resources: Resources, pool: int) -> None:
    started, release_it = threading.Event(), threading.Event()
    manager = builder(resources, pool=pool).build()

    def hold(resource: Resource) -> str:
        started.set()
        assert release_it.wait(10)
        return "done"

    caller = concurrent.futures.ThreadPoolExecutor(1)
    outcome = caller.submit(manager.run_task, hold)
    assert started.wait(10)
    assert manager.stop(timeout=0.2) is False  # a resource is still open
    release_it.set()
    assert outcome.result(10) == "done"
    assert manager.stop(10) is True
    caller.shutdown()
    resources.assert_all_destroyed_once()


def test_an_async_stop_waits_for_a_run_task_resource(resources: Resources) -> None:
    async def main() -> None:
        started, release_it = asyncio.Event(), asyncio.Event()
        manager = await (
            AsyncTaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_workers(1, max_workers=1)
            .with_resource_pool(0)
            .with_policy("fixed")
            .build()
        )

        async def hold(resource: Resource) -> str:
            started.set()
            await asyncio.wait_for(release_it.wait(), 10)
            return "done"

        call = asyncio.create_task(manager.run_task(hold))
        await asyncio.wait_for(started.wait(), 10)
        assert await manager.stop(timeout=0.2) is False
        release_it.set()
        assert await call == "done"
        assert await manager.stop(10) is True

    asyncio.run(asyncio.wait_for(main(), 30))
    resources.assert_all_destroyed_once()


@each_executor
async def test_a_refused_submission_never_arrives(driver: Driver) -> None:
    resources = driver.resources()
    managed = await driver.build(
        TaskManager.builder()
        .with_resource(resources.create, resources.destroy)
        .with_workers(1, max_workers=1)
        .with_policy("fixed")
    )
    await asyncio.gather(*(managed.submit(driver.task(lambda r: None)) for _ in range(5)))
    assert await managed.stop(10)
    with pytest.raises(RuntimeError, match="cannot submit"):
        managed.submit(driver.task(lambda r: None))
    assert managed.metrics().total_tasks_arrived == 5


class TestTheWrongKindOfTask:
    def test_a_coroutine_function_on_the_thread_manager_is_a_clear_error(
        self, resources: Resources
    ) -> None:
        async def fetch(resource: Resource) -> int:
            return 1

        with build(resources) as manager:
            future: Any = manager.submit(fetch)
            with pytest.raises(TypeError, match="returned a coroutine: TaskManager runs plain"):
                future.result(10)
            assert manager.metrics().total_tasks_completed == 0


class TestSilentTraps:
    def test_a_misspelled_option_lists_the_valid_ones(self) -> None:
        with pytest.raises(TypeError, match=r"unknown option 'intervall'; valid options: .*"):
            TaskManager.builder().with_policy("rate", intervall=0.2)

    def test_entering_a_stopped_manager_is_refused(self, resources: Resources) -> None:
        manager = build(resources)
        assert manager.stop(10)
        with pytest.raises(RuntimeError, match=r"cannot enter manager .*: it is stopped"), manager:
            pass

    def test_entering_a_stopped_async_manager_is_refused(self, resources: Resources) -> None:
        async def main() -> None:
            manager = await AsyncTaskManager.builder().with_policy("fixed").build()
            assert await manager.stop(10)
            with pytest.raises(RuntimeError, match=r"cannot enter manager .*: it is stopped"):
                async with manager:
                    pass

        asyncio.run(asyncio.wait_for(main(), 30))

    def test_a_task_waiting_on_its_own_manager_is_refused_not_deadlocked(
        self, resources: Resources
    ) -> None:
        manager: TaskManager[Resource]

        def nested(resource: Resource) -> int:
            return manager.queue_task(lambda r: 1)

        with build(resources) as manager:
            with pytest.raises(RuntimeError, match="use submit\\(\\) and do not wait on it"):
                manager.queue_task(nested)
            # the safe alternatives work from a task
            assert manager.queue_task(lambda r: manager.run_task(lambda r2: 2)) == 2


class TestManagerState:
    def test_every_state_has_its_moves_and_the_final_ones_none(self) -> None:
        from tasker._shutdown import Shutdown
        from tasker.stats import ManagerState

        assert set(Shutdown.MOVES) == set(ManagerState)
        assert Shutdown.MOVES[ManagerState.STOPPED] == set()
        assert Shutdown.MOVES[ManagerState.KILLED] == set()
        assert all(ManagerState.KILLED in moves for moves in list(Shutdown.MOVES.values())[:4])

    def test_a_stopped_manager_cannot_be_killed_and_a_stopping_one_can(
        self, resources: Resources
    ) -> None:
        manager = build(resources)
        assert manager.state == "running"
        assert manager.stop(10)
        assert manager.kill() == KillReport(0, 0)
        assert manager.state == "stopped"

        gate = threading.Event()
        other = build(Resources())
        other.submit(lambda r: gate.wait(10))
        assert not other.stop(0)
        assert other.state == "stopping"
        other.kill()
        assert other.state == "killed"
        gate.set()
        assert other.join(10)
        assert other.state == "killed"
