"""The executor seam: a place holds each worker's resource; the core never learns where."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import pytest

from tasker import (
    AsyncTaskManager,
    RetriesExhaustedError,
    TaskManager,
    WorkerCrashedError,
    current_task,
)
from tasker.executors import AsyncioExecutor, LocalAsyncPlace, LocalPlace, ThreadExecutor
from tests.helpers import Resource, Resources, load_example


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> Any:
    return load_example("pinned_executor", monkeypatch)


class TestTheExampleExecutor:
    def test_resources_live_and_die_on_their_pinned_threads(
        self, pinned: Any, resources: Resources
    ) -> None:
        destroyed_on: list[str] = []

        def destroy(resource: Resource) -> None:
            destroyed_on.append(threading.current_thread().name)
            resources.destroy(resource)

        manager = (
            TaskManager.builder()
            .with_plugins(pinned)
            .with_executor("pinned")
            .with_resource(resources.create, destroy)
            .with_workers(2, max_workers=2)
            .with_resource_pool(0)
            .build()
        )
        with manager:
            ran = [
                manager.submit(lambda r: (threading.current_thread().name, r.rid))
                for _ in range(20)
            ]
            outcomes = [f.result(10) for f in ran]
        assert {name for name, _ in outcomes} <= {"pinned_0"}
        assert all(r.created_in.startswith("pinned") for r in resources.created)
        assert destroyed_on
        assert all(name.startswith("pinned") for name in destroyed_on)
        resources.assert_all_destroyed_once()

    def test_the_example_runs(self, pinned: Any, capsys: pytest.CaptureFixture[str]) -> None:
        pinned.main()
        assert "a task ran on 'pinned_0'" in capsys.readouterr().out


class DyingPlace(LocalPlace):
    """A local place whose first `deaths` calls find it dead (a crashed process, say)."""

    deaths = 0
    interrupted: ClassVar[list[int]] = []

    def call(self, task: Any) -> Any:
        if DyingPlace.deaths > 0:
            DyingPlace.deaths -= 1
            raise WorkerCrashedError("the place died")
        return super().call(task)

    def interrupt(self) -> None:
        DyingPlace.interrupted.append(1)


class DyingExecutor(ThreadExecutor):
    def place(
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> DyingPlace:
        return DyingPlace(on_create, on_destroy)


def dying_manager(resources: Resources, deaths: int, **options: Any) -> TaskManager[Resource]:
    DyingPlace.deaths = deaths
    DyingPlace.interrupted = []
    builder = (
        TaskManager.builder()
        .with_executor(DyingExecutor())
        .with_resource(resources.create, resources.destroy)
        .with_workers(1, max_workers=1)
        .with_resource_pool(0)
        .with_policy("fixed")
        .with_health_check(lambda error: True)  # healthy: a dead place overrides it
        .with_backoff(initial=0.001, maximum=0.01)
        .with_max_retries(2)
    )
    if "timeout" in options:
        builder = builder.with_timeout(options["timeout"])
    return builder.build()


class TestALostPlace:
    def test_is_an_unhealthy_failure_the_task_is_retried_on_a_new_worker(
        self, resources: Resources
    ) -> None:
        with dying_manager(resources, deaths=1) as manager:
            assert manager.queue_task(lambda r: r.rid) == 2  # the second resource
            assert manager.metrics().total_tasks_retried == 1
        resources.assert_all_destroyed_once()

    def test_a_once_task_gets_the_crash(self, resources: Resources) -> None:
        with dying_manager(resources, deaths=1) as manager:
            with pytest.raises(WorkerCrashedError, match="the place died"):
                manager.queue_task_once(lambda r: r.rid)
            assert manager.queue_task(lambda r: r.rid) == 2  # a new worker serves on
        resources.assert_all_destroyed_once()

    def test_after_max_retries_the_caller_gets_the_crash_chained(
        self, resources: Resources
    ) -> None:
        with dying_manager(resources, deaths=3) as manager:
            with pytest.raises(RetriesExhaustedError) as raised:
                manager.queue_task(lambda r: r.rid)
            assert isinstance(raised.value.__cause__, WorkerCrashedError)
        resources.assert_all_destroyed_once()

    def test_a_timeout_asks_the_place_to_interrupt_the_attempt(self, resources: Resources) -> None:
        gate = threading.Event()
        with dying_manager(resources, deaths=0, timeout=0.05) as manager:

            def stuck(resource: Resource) -> None:
                while not current_task().cancelled:  # type: ignore[union-attr]
                    gate.wait(0.01)

            with pytest.raises(TimeoutError):
                manager.queue_task(stuck)
            assert DyingPlace.interrupted == [1]
        resources.assert_all_destroyed_once()


class RemoteLikePlace(LocalAsyncPlace):
    """An async place that does not run tasks inline: every call goes through `call`."""

    calls = 0
    deaths = 0

    async def call(self, task: Any) -> Any:
        RemoteLikePlace.calls += 1
        if RemoteLikePlace.deaths:
            RemoteLikePlace.deaths -= 1
            raise WorkerCrashedError("the actor is gone")
        await asyncio.sleep(0)
        return await super().call(task)


class RemoteLikeExecutor(AsyncioExecutor):
    @property
    def kind(self) -> Literal["asyncio"]:
        return "asyncio"

    def place(
        self, on_create: Callable[[], Any], on_destroy: Callable[[Any], object] | None
    ) -> RemoteLikePlace:
        return RemoteLikePlace(on_create, on_destroy)


def test_an_async_place_is_called_for_every_task_and_a_lost_one_is_replaced(
    resources: Resources,
) -> None:
    RemoteLikePlace.calls, RemoteLikePlace.deaths = 0, 1

    async def task(resource: Resource) -> int:
        return resource.rid

    async def main() -> None:
        manager = await (
            AsyncTaskManager.builder()
            .with_executor(RemoteLikeExecutor())
            .with_resource(resources.create, resources.destroy)
            .with_workers(1, max_workers=1)
            .with_resource_pool(0)
            .with_policy("fixed")
            .with_backoff(initial=0.001, maximum=0.01)
            .build()
        )
        assert await manager.queue_task(task) == 2  # retried on a new place
        assert [await manager.queue_task(task) for _ in range(3)] == [2, 2, 2]
        assert await manager.stop(10)

    asyncio.run(asyncio.wait_for(main(), 30))
    assert RemoteLikePlace.calls == 5
    resources.assert_all_destroyed_once()


def test_a_remote_async_attempt_cut_short_replaces_its_worker(resources: Resources) -> None:
    """A timeout or a cancellation may leave a remote place's attempt running: new place."""
    RemoteLikePlace.calls, RemoteLikePlace.deaths = 0, 0

    async def rid(resource: Resource) -> int:
        return resource.rid

    async def main() -> None:
        manager = await (
            AsyncTaskManager.builder()
            .with_executor(RemoteLikeExecutor())
            .with_resource(resources.create, resources.destroy)
            .with_workers(1, max_workers=1)
            .with_resource_pool(0)
            .with_policy("fixed")
            .build()
        )
        started = asyncio.Event()

        async def stuck(resource: Resource) -> None:
            started.set()
            await asyncio.sleep(60)

        assert await manager.queue_task(rid) == 1
        with pytest.raises(TimeoutError):
            await manager.submit(stuck, timeout=0.05)
        assert await manager.queue_task(rid) == 2
        started.clear()  # the timed-out attempt set it: wait for this one's start
        running = manager.submit(stuck)
        await asyncio.wait_for(started.wait(), 10)
        running.cancel()
        assert await manager.queue_task(rid) == 3
        assert manager.metrics().total_tasks_retried == 0
        assert await manager.stop(10)

    asyncio.run(asyncio.wait_for(main(), 30))
    resources.assert_all_destroyed_once()


class BothKindsExecutor(ThreadExecutor):
    """A thread executor with an asyncio form, as an executor serving both managers has."""

    @property
    def name(self) -> str:
        return "both"

    def for_asyncio(self) -> AsyncioExecutor:
        return RemoteLikeExecutor()


def test_an_async_builder_takes_the_asyncio_form_of_a_thread_executor() -> None:
    builder = AsyncTaskManager.builder().with_executor(BothKindsExecutor())
    assert isinstance(builder._executor, RemoteLikeExecutor)
    assert isinstance(
        TaskManager.builder().with_executor(BothKindsExecutor())._executor, BothKindsExecutor
    )
    with pytest.raises(ValueError, match="needs an asyncio executor"):
        AsyncTaskManager.builder().with_executor(ThreadExecutor())


class Refusing(ThreadExecutor):
    """An executor that readies each task at submit, and refuses the ones it cannot run."""

    def prepare_task(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
        if any(isinstance(arg, float) for arg in args):
            raise TypeError("floats cannot cross")
        return (*args, "prepared")


class TestPreparingATask:
    def test_the_executor_refuses_a_task_at_submit_and_its_places_get_what_it_kept(
        self, resources: Resources
    ) -> None:
        manager = (
            TaskManager.builder()
            .with_executor(Refusing())
            .with_resource(resources.create, resources.destroy)
            .with_workers(1, max_workers=1)
            .build()
        )
        with manager:
            with pytest.raises(TypeError, match="floats cannot cross"):
                manager.submit(lambda r, x: x, 1.5)
            both: Any = lambda r, x, extra: (x, extra)  # noqa: E731 - given one argument
            assert manager.submit(both, 1).result(10) == (1, "prepared")
        assert manager.metrics().total_tasks_arrived == 1

    def test_the_same_hook_serves_asyncio_executors(self) -> None:
        class AsyncRefusing(AsyncioExecutor):
            def prepare_task(
                self, fn: Callable[..., Any], args: tuple[Any, ...]
            ) -> tuple[Any, ...]:
                raise TypeError("nothing crosses")

        async def main() -> None:
            async with AsyncTaskManager.builder().with_executor(AsyncRefusing()).build() as m:

                async def task(_: Any) -> None:
                    return None

                with pytest.raises(TypeError, match="nothing crosses"):
                    m.submit(task)

        asyncio.run(main())
