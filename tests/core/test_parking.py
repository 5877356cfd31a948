"""An idle worker parks, and a task submitted while it waits is handed to it, on both runtimes."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pluggy
import pytest

from tasker import TaskManager
from tasker._asyncio import _Wakeup
from tasker._parking import Parking
from tasker._task import TaskState
from tests.drivers import Driver, on_executors
from tests.helpers import Resources, builder, wait_until

LOCAL = ["thread", "asyncio"]
hookimpl = pluggy.HookimplMarker("tasker")


async def _all_parked(managed: Any, workers: int) -> None:
    """Wait until `workers` workers of `managed` are parked (no event tells it)."""
    core = managed.manager._core
    assert await asyncio.to_thread(wait_until, lambda: len(core._parked) == workers)


def _submit(managed: Any, fn: Any, *args: Any) -> Any:
    """Submit through the manager itself: its own future, not one the driver wraps."""
    return managed.manager.submit(fn, *args)


async def _tasks_handed_to_parked_workers_are_running_at_once(driver: Driver) -> None:
    resources = driver.resources()
    managed = await driver.build(builder(resources, 2))
    await _all_parked(managed, 2)
    gate = driver.gate()
    core = managed.manager._core
    first = _submit(managed, driver.hold(gate))
    second = _submit(managed, driver.hold(gate))
    assert first.state is TaskState.RUNNING  # a worker's own from the submission on
    assert second.state is TaskState.RUNNING
    assert core.queue.main_depth == 0  # never queued
    if driver.kind == "thread":
        assert first.running()
        assert not first.cancel()  # started, as far as its caller can tell
    third = _submit(managed, driver.task(lambda r: 3))
    assert third.state is TaskState.QUEUED  # nobody is parked any more
    assert core.queue.main_depth == 1
    gate.open()
    assert await managed.stop(10)
    assert not first.cancelled()
    resources.assert_all_destroyed_once()


test_tasks_handed_to_parked_workers_are_running_at_once = on_executors(
    _tasks_handed_to_parked_workers_are_running_at_once, LOCAL
)


async def _tasks_arriving_as_parked_burst_workers_time_out_all_run(driver: Driver) -> None:
    # burst workers park with a wait of one scaling interval; with a 2 ms interval they keep
    # running out of patience (and retiring) just as tasks are handed to them
    rng = random.Random(7)
    resources = driver.resources()
    managed = await driver.build(
        builder(resources, 1, max_workers=4).with_policy("rate", interval=0.002, cooldown=0.004)
    )
    task = driver.task(lambda r: 1)
    for _ in range(150):
        futures = [managed.submit(task) for _ in range(rng.randint(1, 8))]
        assert await asyncio.wait_for(asyncio.gather(*futures), 10) == [1] * len(futures)
        await asyncio.sleep(rng.random() * 0.004)  # lets waits run out, of every length
    assert await managed.stop(10)
    resources.assert_all_destroyed_once()


test_tasks_arriving_as_parked_burst_workers_time_out_all_run = on_executors(
    _tasks_arriving_as_parked_burst_workers_time_out_all_run, LOCAL
)


class TestAsyncioCancellation:
    def test_a_handed_task_cancelled_before_its_worker_resumed_never_starts(self) -> None:
        resources = Resources()
        started: list[int] = []

        async def main() -> None:
            manager = await builder(resources, 1).with_executor("asyncio").build()
            core = manager._core
            assert await asyncio.to_thread(wait_until, lambda: len(core._parked) == 1)

            async def record(_: Any, n: int) -> int:
                started.append(n)
                return n

            handed: Any = manager.submit(record, 1)
            assert handed.state is TaskState.RUNNING  # handed to the parked worker
            assert handed.cancel()  # no await since: its worker has not resumed yet
            assert await manager.submit(record, 2) == 2
            assert await manager.stop(10)  # nothing left pending
            assert handed.cancelled()

        asyncio.run(asyncio.wait_for(main(), 30))
        assert started == [2]
        resources.assert_all_destroyed_once()

    def test_a_handed_task_cancelled_then_left_unstarted_ends_once(self) -> None:
        resources = Resources()

        async def main() -> None:
            manager = await builder(resources, 1).with_executor("asyncio").build()
            core = manager._core
            gate = asyncio.Event()

            async def held(_: Any) -> None:
                await asyncio.wait_for(gate.wait(), 10)

            busy = manager.submit(held)  # the real worker is held: the test plays a parked one
            worker = core.workforce.new_worker(burst=False)
            worker.wakeup = _Wakeup(asyncio.get_running_loop())
            assert core.parking.park(worker)
            handed: Any = manager.submit(held)
            assert worker.current == handed  # handed to the parked worker
            assert handed.cancel()  # its worker is parked: nothing to interrupt
            core.parking.leave(worker)  # and it leaves without waking: the task is done with
            assert worker.current is None
            core.workforce.exited(worker)
            gate.set()
            await busy
            assert await manager.stop(5)  # nothing left pending
            assert handed.cancelled()

        asyncio.run(asyncio.wait_for(main(), 30))
        resources.assert_all_destroyed_once()


def test_a_worker_waits_for_a_token_still_owed_rather_than_spin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the submitter of a queued task sends its token after telling observers it is queued: a
    # worker finding the task queued and no token yet waits for the token
    owed, sent = threading.Event(), threading.Event()

    class SlowToHear:
        @hookimpl
        def tasker_task_queued(self, manager: str, task: Any) -> None:
            if task.task_id == 2:
                owed.set()
                assert sent.wait(10)

    parks = 0
    park = Parking.park

    def counted(self: Parking, worker: Any) -> bool:
        nonlocal parks
        parks += 1
        return park(self, worker)

    manager = builder(Resources(), 1).with_plugins(SlowToHear()).build()
    try:
        gate = threading.Event()
        first = manager.submit(lambda r: gate.wait(10))
        second: list[Any] = []
        submitter = threading.Thread(target=lambda: second.append(manager.submit(lambda r: 2)))
        submitter.start()
        assert owed.wait(10)  # queued, its token not sent yet
        monkeypatch.setattr(Parking, "park", counted)
        gate.set()
        assert first.result(10)
        threading.Event().wait(0.1)  # a spinning worker would park thousands of times here
        assert parks <= 2
        sent.set()
        submitter.join(10)
        assert second[0].result(10) == 2
    finally:
        sent.set()
        gate.set()
        manager.stop(10)


def test_a_thread_manager_parks_every_idle_worker() -> None:
    with TaskManager.builder().with_resource(object).with_workers(3).build() as manager:
        assert wait_until(lambda: len(manager._core._parked) == 3)
        assert manager.submit(lambda r: 1).result(10) == 1
        assert wait_until(lambda: len(manager._core._parked) == 3)  # back to its wait
