"""The behaviour every executor shares, each test run on threads, asyncio and processes."""

from __future__ import annotations

import asyncio
import contextvars
import random
from typing import Any

import pytest

from tasker import (
    CancelledError,
    Event,
    ManagerBrokenError,
    ManagerClosedError,
    ManagerState,
    ResourceCreationError,
    RetriesExhaustedError,
    TaskManager,
    current_task,
)
from tests.drivers import Driver, Managed, each_executor, settle_all
from tests.helpers import EventLog, Resource, builder, eventually

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def occupy(driver: Driver, managed: Managed[Any]) -> tuple[Any, asyncio.Future[Any]]:
    """Keep the single worker busy until the returned gate opens."""
    gate, started = driver.gate(), asyncio.Event()
    held = managed.submit(driver.hold(gate, started))
    await asyncio.wait_for(started.wait(), 10)
    return gate, held


def constant(value: int) -> Any:
    return lambda _: value


def appender(order: list[str], name: str) -> Any:
    return lambda _: order.append(name)


def fail_with(error: BaseException) -> Any:
    def body(_: Any) -> None:
        raise error

    return body


@each_executor
async def test_build_gives_each_worker_its_own_resource_and_stop_destroys_each_once(
    driver: Driver,
) -> None:
    resources = driver.resources(fail_destroy=True)
    log = EventLog()
    managed = await driver.build(builder(resources, workers=3, pool=2).with_logger(log))
    assert len(resources.created) == 5
    stats = managed.stats()
    assert (stats.active_workers, stats.available_resources) == (3, 2)
    assert managed.state is ManagerState.RUNNING
    assert await managed.stop(10)
    # every on_destroy failed: each is logged, and each resource still destroyed once
    resources.assert_all_destroyed_once()
    assert len(log.named(Event.RESOURCE_DESTROY_FAILED)) == 5


@each_executor
async def test_a_failing_on_create_fails_build_and_destroys_the_rest(driver: Driver) -> None:
    # the pool's two are made first, then the base workers': the second worker's fails
    resources = driver.resources(fail_create=lambda n: n == 4)
    with pytest.raises(ResourceCreationError) as caught:
        await driver.build(builder(resources, workers=3, pool=2))
    assert isinstance(caught.value.__cause__, ConnectionError)
    resources.assert_all_destroyed_once()


@each_executor
async def test_stop_drains_both_queues_and_refuses_new_work(driver: Driver) -> None:
    resources = driver.resources()
    managed = await driver.build(builder(resources))
    gate, held = await occupy(driver, managed)
    normal = [managed.submit(driver.task(constant(i))) for i in range(5)]
    urgent = managed.submit(driver.task(lambda r: "urgent"), priority=True)
    stopping = asyncio.ensure_future(managed.stop(10))
    await eventually(lambda: managed.state is not ManagerState.RUNNING)
    with pytest.raises(ManagerClosedError):
        managed.submit(driver.task(lambda r: None))
    gate.open()
    assert await stopping
    assert await held is None
    assert [await f for f in normal] == list(range(5))
    assert await urgent == "urgent"
    assert managed.state is ManagerState.STOPPED
    resources.assert_all_destroyed_once()


@each_executor
async def test_kill_cancels_queued_and_running_tasks(driver: Driver) -> None:
    resources = driver.resources()
    managed = await driver.build(builder(resources))
    gate, held = await occupy(driver, managed)
    queued = [managed.submit(driver.task(lambda r: "never")) for _ in range(3)]
    report = await managed.kill()
    assert (report.cancelled_tasks, report.abandoned_tasks) == (3, 1)
    for outcome in await settle_all(held, *queued):
        assert isinstance(outcome, CancelledError | asyncio.CancelledError)
    gate.open()
    assert await managed.join(10)
    assert managed.state is ManagerState.KILLED
    driver.assert_destroyed_after_kill(resources, report.abandoned_tasks)


@each_executor
async def test_priority_first_then_fifo(driver: Driver) -> None:
    order: list[str] = driver.shared_list()
    managed = await driver.build(builder(driver.resources()))
    gate, held = await occupy(driver, managed)
    futures = [managed.submit(driver.task(appender(order, f"n{i}"))) for i in range(3)]
    futures += [
        managed.submit(driver.task(appender(order, f"p{i}")), priority=True) for i in range(3)
    ]
    assert (managed.stats().queued_tasks, managed.stats().priority_tasks) == (3, 3)
    gate.open()
    await settle_all(held, *futures)
    assert list(order) == ["p0", "p1", "p2", "n0", "n1", "n2"]
    assert await managed.stop(10)


@each_executor
async def test_a_retried_task_runs_before_tasks_queued_behind_it(driver: Driver) -> None:
    order: list[str] = driver.shared_list()
    managed = await driver.build(builder(driver.resources()))
    gate, held = await occupy(driver, managed)

    def flaky(_: Resource) -> None:
        task = current_task()
        assert task is not None
        order.append(f"flaky#{task.attempt}")
        if task.attempt == 1:
            raise ConnectionError("reset")

    first = managed.submit(driver.task(flaky))
    rest = [managed.submit(driver.task(appender(order, f"n{i}"))) for i in range(2)]
    gate.open()
    await settle_all(held, first, *rest)
    assert list(order) == ["flaky#1", "flaky#2", "n0", "n1"]
    assert await managed.stop(10)


@each_executor
async def test_a_healthy_error_reaches_the_caller_unchanged(driver: Driver) -> None:
    resources = driver.resources()
    managed = await driver.build(builder(resources))
    error = ValueError("bad input")
    runs: list[int] = driver.shared_list()

    def task(_: Resource) -> None:
        runs.append(1)
        raise error

    with pytest.raises(ValueError, match="bad input") as caught:
        await managed.queue_task(driver.task(task))
    assert caught.value is error
    assert list(runs) == [1]  # never retried
    # the same worker, on the same resource, keeps serving
    assert await managed.queue_task(driver.task(lambda r: r.rid)) == 1
    assert len(resources.created) == 1
    assert managed.metrics().total_tasks_failed == 1
    assert await managed.stop(10)


@each_executor
async def test_unhealthy_replaces_the_worker_and_retries(driver: Driver) -> None:
    resources = driver.resources()
    log = EventLog()
    managed = await driver.build(builder(resources).with_logger(log))
    seen: list[int] = driver.shared_list()

    def task(resource: Resource) -> int:
        seen.append(resource.rid)
        if len(seen) == 1:
            raise ConnectionError("reset")
        return resource.rid

    assert await managed.queue_task(driver.task(task)) == 2
    assert list(seen) == [1, 2]
    assert resources.destroyed[1] == 1  # the unhealthy resource, destroyed at once
    assert managed.stats().active_workers == 1
    assert managed.metrics().total_tasks_retried == 1
    assert await managed.stop(10)
    replaced = log.named(Event.WORKER_REPLACED)
    assert len(replaced) == 1
    assert replaced[0]["replaced_worker_id"] != replaced[0]["worker_id"]
    assert log.named(Event.TASK_RETRIED)[0]["attempt"] == 1
    resources.assert_all_destroyed_once()


@each_executor
async def test_retries_are_bounded_and_the_caller_gets_the_last_error_chained(
    driver: Driver,
) -> None:
    resources = driver.resources()
    managed = await driver.build(builder(resources, max_retries=2))
    attempts: list[int] = driver.shared_list()

    def task(_: Resource) -> None:
        attempts.append(1)
        raise ConnectionError(f"reset #{len(attempts)}")

    with pytest.raises(RetriesExhaustedError) as caught:
        await managed.queue_task(driver.task(task))
    assert caught.value.attempts == 3
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert str(caught.value.__cause__) == "reset #3"
    assert len(attempts) == 3
    metrics = managed.metrics()
    assert (metrics.total_tasks_retried, metrics.total_tasks_failed) == (2, 1)
    # the first resource and one replacement per unhealthy failure; the last one serves
    assert await managed.queue_task(driver.task(lambda r: r.rid)) == 4
    assert len(resources.created) == 4
    assert await managed.stop(10)
    resources.assert_all_destroyed_once()


@each_executor
async def test_a_once_task_is_never_retried_but_its_worker_is_still_replaced(
    driver: Driver,
) -> None:
    resources = driver.resources()
    managed = await driver.build(builder(resources))
    runs: list[int] = driver.shared_list()
    error = ConnectionError("reset")

    def task(resource: Resource) -> None:
        runs.append(resource.rid)
        raise error

    with pytest.raises(ConnectionError) as caught:
        await managed.submit(driver.task(task), once=True)
    if not driver.remote:  # from another process, an equal copy comes back
        assert caught.value is error
    assert list(runs) == [1]
    await eventually(lambda: resources.destroyed[1] == 1)  # may follow the caller's answer
    with pytest.raises(ConnectionError):  # from the priority queue alike
        await managed.submit(driver.task(task), priority=True, once=True)
    assert list(runs) == [1, 2]
    assert await managed.queue_task(driver.task(lambda r: r.rid)) == 3
    assert await managed.stop(10)
    resources.assert_all_destroyed_once()


@each_executor
async def test_the_manager_breaks_and_recovers(driver: Driver) -> None:
    healed = False
    resources = driver.resources(fail_create=lambda n: n > 1 and not healed)
    log = EventLog()
    managed = await driver.build(builder(resources, broken_after=0.1).with_logger(log))
    # no worker can be replaced: the failing task and every task queued behind it are answered
    gate, held = await occupy(driver, managed)
    first = managed.submit(driver.task(fail_with(ConnectionError("reset"))))
    queued = [managed.submit(driver.task(lambda r: r.rid)) for _ in range(3)]
    gate.open()
    await held
    for outcome in await settle_all(first, *queued):
        assert isinstance(outcome, ManagerBrokenError)
        assert isinstance(outcome.__cause__, ConnectionError)
    assert managed.state is ManagerState.BROKEN
    assert log.named(Event.MANAGER_BROKEN)
    with pytest.raises(ManagerBrokenError):
        managed.submit(driver.task(lambda r: None))
    healed = True
    await eventually(lambda: managed.state is ManagerState.RUNNING)
    assert await managed.queue_task(driver.task(lambda r: r.rid)) == resources.created[-1].rid
    assert log.named(Event.MANAGER_RECOVERED)
    assert await managed.stop(10)
    resources.assert_all_destroyed_once()


@each_executor
async def test_a_timeout_fails_the_caller_and_keeps_the_worker(driver: Driver) -> None:
    resources = driver.resources()
    managed = await driver.build(builder(resources))
    gate = driver.gate()
    with pytest.raises(TimeoutError):
        await managed.submit(driver.hold(gate), timeout=0.05)
    gate.open()
    assert await managed.queue_task(driver.task(lambda r: r.rid)) == 1  # same worker
    assert managed.metrics().total_tasks_failed == 1
    assert await managed.stop(10)
    resources.assert_all_destroyed_once()


def test_timeout_bookkeeping_follows_the_running_tasks_not_the_rate() -> None:
    with (
        TaskManager.builder()
        .with_workers(2)
        .with_policy("fixed")
        .with_timeout(60)
        .build() as manager
    ):
        for _ in range(2000):
            manager.queue_task(lambda r: None)
        assert len(manager._runtime._deadlines) <= 4 * 2 + 64 + 1


def test_a_deadline_passing_while_the_attempt_settles_does_not_settle_it_twice() -> None:
    """The attempt ended just before its deadline; the worker is still settling it."""
    import concurrent.futures

    submitted: list[concurrent.futures.Future[Any]] = []

    class Lingering:
        """Holds the worker after its attempt ended, past the deadline, before the caller."""

        def record_arrival(self, task: Any) -> None:
            pass

        def record_start(self, task: Any, wait_time: float) -> None:
            pass

        def record_completion(self, task: Any, execution_time: float) -> None:
            # the timeout must not answer the caller meanwhile: this wait has to time out
            concurrent.futures.wait(submitted, timeout=0.3)

        def record_failure(self, task: Any, execution_time: float, error: BaseException) -> None:
            pass

        def record_retry(self, task: Any, error: BaseException) -> None:
            pass

    with (
        TaskManager.builder()
        .with_workers(1)
        .with_policy("fixed")
        .with_metrics(Lingering())
        .build() as manager
    ):
        submitted.append(manager.submit(lambda r: "on time", timeout=0.05))
        assert submitted[0].result(10) == "on time"
        metrics = manager.metrics()
        assert (metrics.total_tasks_completed, metrics.total_tasks_failed) == (1, 0)


@each_executor
async def test_run_task_uses_the_pool_then_temporary_resources(driver: Driver) -> None:
    resources = driver.resources()
    managed = await driver.build(builder(resources, pool=1))
    pooled = resources.created[0].rid
    assert await managed.run_task(driver.task(lambda r: r.rid)) == pooled
    assert managed.stats().available_resources == 1
    seen = await managed.run_task(driver.task(lambda r: r.rid), once=True)
    assert seen == pooled
    assert await managed.stop(10)
    resources.assert_all_destroyed_once()


@each_executor
async def test_cancelling_a_queued_task_removes_it(driver: Driver) -> None:
    ran: list[int] = driver.shared_list()
    managed = await driver.build(builder(driver.resources()))
    gate, held = await occupy(driver, managed)
    doomed = managed.submit(driver.task(lambda r: ran.append(1)))
    await asyncio.sleep(0)
    assert managed.stats().queued_tasks == 1
    doomed.cancel()
    # a thread future's cancellation reaches the manager from the loop's side, a little later
    await eventually(lambda: managed.stats().queued_tasks == 0)
    gate.open()
    await held
    assert await managed.stop(10)
    assert list(ran) == []


@each_executor
async def test_the_submitters_contextvars_are_visible(driver: Driver) -> None:
    managed = await driver.build(builder(driver.resources(), pool=1))
    token = request_id.set("req-7")
    assert await managed.queue_task(driver.task(lambda r: request_id.get())) == "req-7"
    assert await managed.run_task(driver.task(lambda r: request_id.get())) == "req-7"
    request_id.reset(token)
    assert await managed.queue_task(driver.task(lambda r: request_id.get())) == "-"
    # and a task's changes stay in the task's own copy
    await managed.queue_task(driver.task(lambda r: request_id.set("leak")))
    assert request_id.get() == "-"
    assert await managed.stop(10)


@each_executor
async def test_extra_arguments_follow_the_resource(driver: Driver) -> None:
    resources = driver.resources()
    managed = await driver.build(builder(resources))

    def body(resource: Resource, name: str, n: int) -> tuple[int, str, int]:
        return resource.rid, name, n

    if driver.kind != "asyncio":
        task: Any = body
    else:

        async def task(resource: Resource, name: str, n: int) -> tuple[int, str, int]:
            return body(resource, name, n)

    assert await managed.submit(task, "a", 1) == (resources.created[0].rid, "a", 1)
    assert await managed.submit(task, "b", 2, priority=True, once=True) == (
        resources.created[0].rid,
        "b",
        2,
    )
    assert await managed.stop(10)


@each_executor
async def test_metrics_count_every_outcome(driver: Driver) -> None:
    managed = await driver.build(builder(driver.resources(), workers=2))
    for _ in range(5):
        await managed.queue_task(driver.task(lambda r: None))
    with pytest.raises(ValueError, match="x"):
        await managed.queue_task(driver.task(fail_with(ValueError("x"))))
    metrics = managed.metrics()
    assert (metrics.total_tasks_completed, metrics.total_tasks_failed) == (5, 1)
    assert metrics.success_rate == pytest.approx(5 / 6)
    assert await managed.stop(10)


@each_executor
async def test_bursts_grow_under_load_and_retire_when_idle(driver: Driver) -> None:
    resources = driver.resources()
    managed = await driver.build(
        builder(resources, max_workers=3).with_policy("rate", interval=0.02, cooldown=0.05)
    )
    gate = driver.gate()
    # tasks keep arriving (the rate policy follows arrivals) until the pool is full; a burst
    # process serves only once started, and the policy steps again once it has
    futures = [managed.submit(driver.hold(gate)) for _ in range(30)]
    for _ in range(2000):
        if managed.stats().active_workers == 3:
            break
        futures.append(managed.submit(driver.hold(gate)))
        await asyncio.sleep(0.005)
    assert managed.stats().burst_workers == 2
    gate.open()
    await settle_all(*futures)
    await eventually(lambda: managed.stats().active_workers == 1, 10 * driver.patience)
    assert managed.stats().burst_workers == 0
    assert await managed.stop(10)
    resources.assert_all_destroyed_once()


@pytest.mark.parametrize("seed", range(3))
@each_executor
async def test_every_task_ends_once_under_random_faults(driver: Driver, seed: int) -> None:
    rng = random.Random(seed)
    resources = driver.resources(fail_create=lambda n: n > 3 and rng.random() < 0.2)
    managed = await driver.build(
        builder(resources, workers=2, max_workers=4, pool=1, policy="rate", max_retries=2)
    )

    def task(roll: float) -> Any:
        def body(resource: Resource) -> int:
            if roll < 0.1:
                raise ConnectionError("reset")
            if roll < 0.2:
                raise ValueError("bad")
            return resource.rid

        return driver.task(body)

    futures = []
    for _ in range(driver.many(600)):
        futures.append(
            managed.submit(task(rng.random()), priority=rng.random() < 0.3, once=rng.random() < 0.2)
        )
        if rng.random() < 0.05:
            futures[-1].cancel()
    abandoned = 0
    if seed == 2:
        abandoned = (await managed.kill()).abandoned_tasks
        assert await managed.join(10)
    else:
        assert await managed.stop(20 * driver.patience)
    outcomes = await settle_all(*futures)
    assert len(outcomes) == len(futures)
    for outcome in outcomes:
        assert isinstance(
            outcome,
            int
            | ValueError
            | ConnectionError
            | RetriesExhaustedError
            | ManagerBrokenError
            | CancelledError
            | asyncio.CancelledError,
        )
    driver.assert_destroyed_after_kill(resources, abandoned)


class _Body:
    """A task body that can be watched with a weak reference."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def __call__(self, resource: Any) -> int:
        if self.fail:
            raise ValueError("failed on purpose")
        return 7


@each_executor
async def test_an_ended_task_keeps_its_outcome_and_lets_go_of_its_function(
    driver: Driver,
) -> None:
    import gc
    import weakref

    managed = await driver.build(builder(driver.resources()))
    kept: list[Any] = []  # the manager's own futures, held like a caller would

    def submit(body: _Body) -> asyncio.Future[Any]:
        manager = managed.manager
        if isinstance(manager, TaskManager):
            future = manager.submit(driver.task(body))
            kept.append(future)
            return asyncio.wrap_future(future)
        awaitable = manager.submit(driver.task(body))
        kept.append(awaitable)
        return awaitable

    bodies = [_Body(False), _Body(True), _Body(False)]
    refs = [weakref.ref(body) for body in bodies]
    succeeded, failed = submit(bodies[0]), submit(bodies[1])
    gate, held = await occupy(driver, managed)
    doomed = submit(bodies[2])  # queued behind the held task, then cancelled
    del bodies
    kept[-1].cancel()
    await eventually(lambda: managed.stats().queued_tasks == 0)  # the cancellation has arrived
    gate.open()
    await held
    assert await succeeded == 7
    with pytest.raises(ValueError, match="on purpose"):
        await failed
    assert doomed.cancelled()
    gc.collect()
    # the futures no longer hold them (a failure's traceback still shows its frame: as usual)
    assert [refs[0](), refs[2]()] == [None, None]
    assert len(kept) == 3
    assert await managed.stop(10)
