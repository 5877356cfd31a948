"""Overload: a bounded queue (wait for room, fail at once, or wait up to a timeout) and shedding.

Every behaviour runs on both executors: the thread manager's `submit` blocks for room, the
asyncio manager's `put` awaits it (its `submit` never waits).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tasker import (
    AsyncTaskManager,
    Event,
    ManagerClosedError,
    QueueFullError,
    TaskExpiredError,
    TaskManager,
    TaskManagerBuilder,
    _threads,
)
from tests.drivers import Driver, Managed, each_executor, settle_all
from tests.helpers import EventLog, builder, eventually, wait_until


def bounded(limit: int, log: EventLog | None = None, **options: Any) -> TaskManagerBuilder[None]:
    """One worker, no resource, a queue of `limit` tasks."""
    made = builder(log=log if log is not None else EventLog()).with_queue_limit(limit)
    if "max_queue_wait" in options:
        made = made.with_max_queue_wait(options["max_queue_wait"])
    return made


def returning(value: int) -> Callable[[Any], int]:
    """A task returning `value`."""
    return lambda _: value


async def put(managed: Managed[Any], fn: Any, **options: Any) -> asyncio.Future[Any]:
    """Queue a task, waiting for room as `block` says: the thread API blocks, asyncio awaits."""
    manager = managed.manager
    if isinstance(manager, TaskManager):
        future = await asyncio.to_thread(lambda: manager.submit(fn, **options))
        return asyncio.wrap_future(future)
    assert isinstance(manager, AsyncTaskManager)
    return await manager.put(fn, **options)


def submit_now(managed: Managed[Any], fn: Any, **options: Any) -> asyncio.Future[Any]:
    """Queue a task, failing at once when the queue is full."""
    manager = managed.manager
    if isinstance(manager, TaskManager):
        return asyncio.wrap_future(manager.submit(fn, block=False, **options))
    return manager.submit(fn, **options)


async def full_manager(
    driver: Driver, limit: int, log: EventLog | None = None, **options: Any
) -> tuple[Managed[None], Any, list[asyncio.Future[Any]]]:
    """A manager whose one worker is held and whose queue holds `limit` tasks."""
    managed = await driver.build(bounded(limit, log, **options))
    gate = driver.gate()
    started = asyncio.Event()
    held = managed.submit(driver.hold(gate, started, result="held"))
    await asyncio.wait_for(started.wait(), 10)
    queued = [managed.submit(driver.task(returning(i))) for i in range(limit)]
    assert managed.stats().queued_tasks == limit
    return managed, gate, [held, *queued]


@each_executor
async def test_a_full_queue_refuses_at_once_a_caller_that_will_not_wait(driver: Driver) -> None:
    log = EventLog()
    managed, gate, futures = await full_manager(driver, 2, log)
    with pytest.raises(QueueFullError, match="full") as refused:
        submit_now(managed, driver.task(lambda _: "late"))
    if not isinstance(managed.manager, TaskManager):  # the async submit names the waiting path
        assert "`await put(...)` waits for room" in str(refused.value)
    with pytest.raises(QueueFullError):
        await put(managed, driver.task(lambda _: "late"), block=False)
    stats = managed.stats()
    assert (stats.queue_limit, stats.queued_tasks, stats.waiting_submissions) == (2, 2, 0)
    gate.open()
    assert await settle_all(*futures) == ["held", 0, 1]
    assert await managed.stop(10)
    metrics = managed.metrics()
    assert metrics.total_tasks_rejected == 2
    assert metrics.total_tasks_arrived == 3  # a rejected task never arrived
    assert len(log.named(Event.TASK_REJECTED)) == 2


@each_executor
async def test_a_waiting_submission_gets_the_room_a_started_task_frees(driver: Driver) -> None:
    managed, gate, futures = await full_manager(driver, 1)
    waiting = asyncio.ensure_future(put(managed, driver.task(lambda _: "waited")))
    await eventually(lambda: managed.stats().waiting_submissions == 1)
    assert not waiting.done()
    gate.open()  # the worker takes the queued task: room for the waiting one
    assert await (await asyncio.wait_for(waiting, 10)) == "waited"
    assert await settle_all(*futures) == ["held", 0]
    assert managed.stats().waiting_submissions == 0
    assert await managed.stop(10)


@each_executor
async def test_a_bounded_wait_ends_in_queue_full_error(driver: Driver) -> None:
    managed, gate, futures = await full_manager(driver, 1)
    began = time.monotonic()
    with pytest.raises(QueueFullError):
        await put(managed, driver.task(lambda _: "late"), block=0.05)
    assert time.monotonic() - began >= 0.05
    assert managed.stats().waiting_submissions == 0
    assert managed.metrics().total_tasks_rejected == 1
    gate.open()
    assert await settle_all(*futures) == ["held", 0]
    assert await managed.stop(10)


@each_executor
async def test_stop_wakes_every_waiting_submission_and_finishes_the_queue(driver: Driver) -> None:
    managed, gate, futures = await full_manager(driver, 1)
    waiting = [
        asyncio.ensure_future(put(managed, driver.task(lambda _: "never"))) for _ in range(3)
    ]
    await eventually(lambda: managed.stats().waiting_submissions == 3)
    stopping = asyncio.ensure_future(managed.stop(10))
    outcomes = await asyncio.wait_for(settle_all(*waiting), 10)
    assert all(isinstance(o, ManagerClosedError) for o in outcomes), outcomes
    gate.open()
    assert await stopping
    assert await settle_all(*futures) == ["held", 0]  # what was queued still ran


@each_executor
async def test_kill_wakes_every_waiting_submission(driver: Driver) -> None:
    managed, gate, futures = await full_manager(driver, 1)
    waiting = [
        asyncio.ensure_future(put(managed, driver.task(lambda _: "never"))) for _ in range(3)
    ]
    await eventually(lambda: managed.stats().waiting_submissions == 3)
    report = await managed.kill()
    outcomes = await asyncio.wait_for(settle_all(*waiting), 10)
    assert all(isinstance(o, ManagerClosedError) for o in outcomes), outcomes
    assert (report.cancelled_tasks, report.abandoned_tasks) == (1, 1)
    gate.open()
    assert all(isinstance(o, asyncio.CancelledError) for o in await settle_all(*futures))
    assert await managed.join(10)


@each_executor
async def test_waiting_priority_tasks_get_room_first(driver: Driver) -> None:
    managed = await driver.build(bounded(1))
    first, second = driver.gate(), driver.gate()
    started = asyncio.Event()
    held = managed.submit(driver.hold(first, started, result="first"))
    await asyncio.wait_for(started.wait(), 10)
    next_held = managed.submit(driver.hold(second, result="second"))  # the queue is full
    normal = asyncio.ensure_future(put(managed, driver.task(lambda _: "normal")))
    await eventually(lambda: managed.stats().waiting_submissions == 1)
    urgent = asyncio.ensure_future(put(managed, driver.task(lambda _: "urgent"), priority=True))
    await eventually(lambda: managed.stats().waiting_submissions == 2)
    first.open()  # the worker moves on to the next held task: room for one
    admitted = await asyncio.wait_for(urgent, 10)
    assert not normal.done()
    assert managed.stats().waiting_submissions == 1
    second.open()
    assert await admitted == "urgent"
    assert await (await asyncio.wait_for(normal, 10)) == "normal"
    assert await settle_all(held, next_held) == ["first", "second"]
    assert await managed.stop(10)


@each_executor
async def test_priority_tasks_count_against_the_limit(driver: Driver) -> None:
    managed = await driver.build(bounded(2))
    gate = driver.gate()
    started = asyncio.Event()
    held = managed.submit(driver.hold(gate, started))
    await asyncio.wait_for(started.wait(), 10)
    urgent = [managed.submit(driver.task(lambda _: "p"), priority=True) for _ in range(2)]
    assert managed.stats().priority_tasks == 2
    for priority in (False, True):
        with pytest.raises(QueueFullError):
            submit_now(managed, driver.task(lambda _: "x"), priority=priority)
    gate.open()
    assert await settle_all(held, *urgent) == [None, "p", "p"]
    assert await managed.stop(10)


@each_executor
async def test_a_cancelled_wait_leaves_the_line_and_its_task_never_runs(driver: Driver) -> None:
    if driver.kind != "asyncio":
        pytest.skip("a blocked thread cannot be cancelled; an interrupt is covered below")
    managed, gate, futures = await full_manager(driver, 1)
    ran: list[str] = []
    waiting = asyncio.ensure_future(put(managed, driver.task(lambda _: ran.append("ran"))))
    await eventually(lambda: managed.stats().waiting_submissions == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert managed.stats().waiting_submissions == 0
    gate.open()
    await settle_all(*futures)
    assert await managed.stop(10)
    assert ran == []


@each_executor
async def test_without_a_limit_the_queue_is_never_full(driver: Driver) -> None:
    managed = await driver.build(TaskManager.builder().with_logger(EventLog()))
    futures = [await put(managed, driver.task(returning(i)), block=False) for i in range(50)]
    assert await settle_all(*futures) == list(range(50))
    assert managed.stats().queue_limit is None
    assert await managed.stop(10)


def test_bad_limits_and_blocks_are_refused_early() -> None:
    with pytest.raises(ValueError, match="queue_limit must be an integer >= 1"):
        TaskManager.builder().with_queue_limit(0)
    with pytest.raises(ValueError, match="max_queue_wait must be"):
        TaskManager.builder().with_max_queue_wait(-1)
    with TaskManager.builder().build() as manager:  # checked even with no limit
        for bad in ("yes", -1, math.nan, None):
            with pytest.raises(ValueError, match="block must be True"):
                manager.submit(lambda _: None, block=bad)  # type: ignore[arg-type]


class TestNothingLost:
    def test_many_producers_on_a_small_queue_lose_nothing(self) -> None:
        done = threading.Event()
        results: list[int] = []
        rejected: list[int] = []
        lock = threading.Lock()
        manager = (
            TaskManager.builder()
            .with_workers(2, max_workers=2)
            .with_queue_limit(3)
            .with_logger(EventLog())
            .build()
        )

        def produce(p: int) -> None:
            futures = []
            for i in range(50):
                n = p * 100 + i
                block: bool | float = (True, False, 0.001)[i % 3]
                try:
                    futures.append(manager.submit(returning(n), block=block))
                except QueueFullError:
                    with lock:
                        rejected.append(n)
            for future in futures:
                value = future.result(timeout=10)
                with lock:
                    results.append(value)

        producers = [threading.Thread(target=produce, args=(p,)) for p in range(6)]
        for thread in producers:
            thread.start()
        for thread in producers:
            thread.join(30)
        done.set()
        assert manager.stop(10)
        assert sorted(results + rejected) == sorted(
            p * 100 + i for p in range(6) for i in range(50)
        )
        metrics = manager.metrics()
        assert metrics.total_tasks_rejected == len(rejected)
        assert metrics.total_tasks_completed == len(results)
        assert manager.stats().waiting_submissions == 0

    def test_an_interrupted_blocking_submit_leaves_the_line(self) -> None:
        gate = threading.Event()
        started = threading.Event()
        with bounded(1).build() as manager:
            manager.submit(lambda _: started.set() or gate.wait(10))
            assert started.wait(10)
            manager.submit(lambda _: "queued")

            class Interrupted(BaseException):
                pass

            ran: list[str] = []
            # a KeyboardInterrupt raises in the waiting thread's wait; so does this waiter

            original = _threads._Waiter.wait

            def interrupted_wait(self: _threads._Waiter, timeout: float | None) -> bool:
                raise Interrupted

            _threads._Waiter.wait = interrupted_wait  # type: ignore[method-assign]
            try:
                with pytest.raises(Interrupted):
                    manager.submit(lambda _: ran.append("ran"))
            finally:
                _threads._Waiter.wait = original  # type: ignore[method-assign]
            assert manager.stats().waiting_submissions == 0
            gate.set()
        assert ran == []

    def test_a_retry_is_taken_back_into_a_full_queue(self) -> None:
        attempts: list[int] = []
        gate = threading.Event()

        def flaky(_: object) -> str:
            attempts.append(1)
            if len(attempts) == 1:
                assert gate.wait(10)
                raise ConnectionError("unhealthy")
            return "ok"

        builder = bounded(1).with_health_check(lambda exc: not isinstance(exc, ConnectionError))
        with builder.build() as manager:
            first = manager.submit(flaky)
            assert wait_until(lambda: manager.stats().busy_workers == 1)
            other = manager.submit(lambda _: "other")  # the queue is full now
            gate.set()  # the retry goes back to the front, over the limit
            assert first.result(10) == "ok"
            assert other.result(10) == "other"


@each_executor
async def test_a_task_that_waited_too_long_fails_with_task_expired(driver: Driver) -> None:
    log = EventLog()
    managed, gate, futures = await full_manager(driver, 2, log, max_queue_wait=0.02)
    queued_at = time.monotonic()
    while time.monotonic() - queued_at < 0.05:  # the queued tasks outlive their wait
        await asyncio.sleep(0.01)
    fresh_gate = driver.gate()
    gate.open()
    outcomes = await settle_all(*futures)
    assert outcomes[0] == "held"
    for expired in outcomes[1:]:
        assert isinstance(expired, TaskExpiredError), expired
        assert expired.waited >= 0.02
        assert expired.max_wait == 0.02
    fresh_gate.open()
    late = 0  # a loaded machine may leave even an idle worker's task waiting too long
    while True:
        outcome = (await settle_all(managed.submit(driver.task(lambda _: "in time"))))[0]
        if not isinstance(outcome, TaskExpiredError) or late == 20:
            break
        late += 1
    assert outcome == "in time"
    assert await managed.stop(10)
    metrics = managed.metrics()
    assert metrics.total_tasks_shed == 2 + late
    assert metrics.total_tasks_failed == 0
    assert metrics.total_tasks_completed == 2
    assert len(log.named(Event.TASK_SHED)) == 2 + late


@each_executor
async def test_a_stop_finishes_when_the_last_queued_tasks_are_shed(driver: Driver) -> None:
    managed, gate, futures = await full_manager(driver, 3, max_queue_wait=0.01)
    queued_at = time.monotonic()
    while time.monotonic() - queued_at < 0.03:
        await asyncio.sleep(0.005)
    stopping = asyncio.ensure_future(managed.stop(10))
    gate.open()
    assert await asyncio.wait_for(stopping, 15)
    outcomes = await settle_all(*futures)
    assert sum(isinstance(o, TaskExpiredError) for o in outcomes) == 3


@each_executor
async def test_tasks_within_the_wait_run(driver: Driver) -> None:
    managed = await driver.build(bounded(100, max_queue_wait=60.0))
    futures = [managed.submit(driver.task(returning(i))) for i in range(20)]
    assert await settle_all(*futures) == list(range(20))
    assert await managed.stop(10)
    assert managed.metrics().total_tasks_shed == 0
