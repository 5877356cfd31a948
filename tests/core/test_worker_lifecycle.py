"""The manager's and the workers' lifecycles are written once; each runtime only performs them."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Generator
from typing import Any

import pytest

from tasker import ResourceCreationError, TaskManager
from tasker._asyncio import AsyncRuntime
from tasker._core import Core
from tasker._lifecycle import ACTIONS, Step, Steps, drive
from tasker._queue import EXIT, IDLE, TASK
from tasker._threads import ThreadRuntime
from tasker._worker import Worker
from tests.drivers import Driver, each_executor
from tests.helpers import Resource, Resources


class TestRuntimesPerformEveryAction:
    def test_the_thread_runtime_performs_each_action_by_calling(self) -> None:
        for action in ACTIONS:
            method = getattr(ThreadRuntime, action)
            assert not inspect.iscoroutinefunction(method), action

    def test_the_asyncio_runtime_performs_each_action_by_awaiting(self) -> None:
        for action in ACTIONS:
            assert inspect.iscoroutinefunction(getattr(AsyncRuntime, action)), action


class _Performer:
    """Performs `double` by calling, and fails `boom`."""

    def double(self, n: int) -> int:
        return 2 * n

    def boom(self) -> None:
        raise ValueError("boom")

    def perform(self, step: Step) -> Generator[Any, Any, Any]:
        yield from ()
        return getattr(self, step.action)(*step.args)


class TestDrive:
    def test_the_outcome_of_each_step_is_sent_back_and_the_lifecycle_returns(self) -> None:
        def lifecycle() -> Steps[int]:
            a: int = yield Step("double", (2,))
            b: int = yield Step("double", (a,))
            return b + 1

        with pytest.raises(StopIteration) as done:
            drive(lifecycle(), _Performer().perform).send(None)
        assert done.value.value == 9

    def test_a_failed_step_is_thrown_into_the_lifecycle_which_decides(self) -> None:
        seen: list[BaseException] = []

        def lifecycle() -> Steps[str]:
            try:
                yield Step("boom")
            except ValueError as error:
                seen.append(error)
            return "recovered"

        with pytest.raises(StopIteration) as done:
            drive(lifecycle(), _Performer().perform).send(None)
        assert done.value.value == "recovered"
        assert [str(e) for e in seen] == ["boom"]

    def test_an_undecided_failure_leaves_the_driver(self) -> None:
        def lifecycle() -> Steps[None]:
            yield Step("boom")

        with pytest.raises(ValueError, match="boom"):
            drive(lifecycle(), _Performer().perform).send(None)


@each_executor
async def test_a_failing_pool_fill_fails_the_build_alike_and_destroys_what_was_made(
    driver: Driver,
) -> None:
    resources = driver.resources()
    resources.fail_create = lambda n: n == 2
    with pytest.raises(
        ResourceCreationError, match="on_create failed while filling the resource pool"
    ) as caught:
        await driver.build(
            TaskManager.builder()
            .with_resource(resources.create, resources.destroy)
            .with_resource_pool(3)
        )
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert len(resources.created) == 1
    resources.assert_all_destroyed_once()


def test_the_asyncio_lifecycle_awaits_without_blocking_the_loop() -> None:
    asyncio.run(asyncio.wait_for(_build_and_stop_while_the_loop_ticks(), 30))


async def _build_and_stop_while_the_loop_ticks() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.get_running_loop().create_task(tick())
    try:
        resources = Resources()

        async def slow_create() -> Resource:
            await asyncio.sleep(0.01)
            return resources.create()

        manager = await (
            TaskManager.builder()
            .with_executor("asyncio")
            .with_resource(slow_create, resources.destroy)
            .with_workers(2, max_workers=2)
            .build()
        )
        assert await manager.stop(10)
    finally:
        ticker.cancel()
    assert ticks > 2
    resources.assert_all_destroyed_once()


def _leaves(core: Core[Any], worker: Worker, token: object) -> bool:
    """Whether `worker`, handed `token` with nothing queued, is told to leave."""
    assert core.next_task(worker, token) is None
    return worker.leaving


class TestRetirementNeverDropsAToken:
    """What a worker does with each token is decided once, in the core, for every runtime."""

    def test_a_task_token_never_retires_a_burst_worker_even_when_one_may_retire(self) -> None:
        # a task token arriving in a blocking wait is not the wait timing out: a worker that
        # retired holding it would leave its task queued with no token, never run
        with TaskManager.builder().with_resource(object).build() as manager:
            core = manager._core
            worker = Worker(0, burst=True)
            core._retire_quota = 1  # the policy asks one idle burst worker to leave
            assert not _leaves(core, worker, TASK)  # its task was cancelled meanwhile
            assert core.retiring
            assert _leaves(core, worker, IDLE)  # its wait ran out: it may leave now
            assert not core.retiring

    def test_an_idle_worker_stays_when_no_retirement_is_asked(self) -> None:
        with TaskManager.builder().with_resource(object).build() as manager:
            worker = Worker(0, burst=True)
            assert not _leaves(manager._core, worker, IDLE)

    def test_an_exit_token_makes_any_worker_leave(self) -> None:
        with TaskManager.builder().with_resource(object).build() as manager:
            worker = Worker(0, burst=False)
            assert _leaves(manager._core, worker, EXIT)
