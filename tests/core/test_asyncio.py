"""What only the asyncio manager does: real cancellation, loop hygiene, uvloop, typing."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, assert_type

import pytest
import uvloop

from tasker import (
    AsyncTaskFuture,
    AsyncTaskManager,
    AsyncTaskManagerBuilder,
    CancelledError,
    TaskManager,
    current_task,
)
from tests.helpers import Resource, Resources


def run(main: Callable[[], Coroutine[Any, Any, None]], loop: str = "asyncio") -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(main(), 30))


class _BlockingCalls:
    """Records blocking waits made on the thread that runs the event loop, while it runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        self._monkeypatch = monkeypatch
        self._loop_thread: int | None = None

    def _wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._loop_thread and _loop_running():
                self.calls.append(label)
            return original(*args, **kwargs)

        self._monkeypatch.setattr(owner, name, watched)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        self._loop_thread = threading.get_ident()
        for owner, name, label in (
            (time, "sleep", "time.sleep"),
            (threading.Event, "wait", "Event.wait"),
            (threading.Condition, "wait", "Condition.wait"),
            (threading.Thread, "join", "Thread.join"),
            (threading.Semaphore, "acquire", "Semaphore.acquire"),
            (Future, "result", "Future.result"),
            (queue.Queue, "get", "Queue.get"),
            (queue.Queue, "put", "Queue.put"),
        ):
            self._wrap(owner, name, label)
        try:
            yield
        finally:
            self._monkeypatch.undo()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class AsyncResources(Resources):
    """Resources with coroutine hooks."""

    async def acreate(self) -> Resource:
        await asyncio.sleep(0)
        return self.create()

    async def adestroy(self, resource: Resource) -> None:
        await asyncio.sleep(0)
        self.destroy(resource)


def build(resources: AsyncResources, workers: int = 1) -> Any:
    return (
        AsyncTaskManager.builder()
        .with_resource(resources.acreate, resources.adestroy)
        .with_workers(workers, max_workers=workers)
        .with_resource_pool(0)
        .with_policy("fixed")
        .build()
    )


class TestCancellation:
    def test_kill_cancels_running_tasks_for_real(self) -> None:
        resources = AsyncResources()
        inside: list[str] = []

        async def main() -> None:
            manager = await build(resources, workers=2)
            started = asyncio.Event()

            async def long(_: Resource) -> None:
                started.set()
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    inside.append("cancelled")
                    raise

            futures = [manager.submit(long) for _ in range(2)]
            await started.wait()
            await asyncio.sleep(0)
            report = await manager.kill()
            assert report.abandoned_tasks == 2
            assert await manager.join(10)
            for future in futures:
                assert future.cancelled()

        run(main)
        assert inside == ["cancelled", "cancelled"]
        resources.assert_all_destroyed_once()

    def test_cancelling_a_callers_await_cancels_that_task_only(self) -> None:
        resources = AsyncResources()
        seen: list[str] = []

        async def main() -> None:
            async with await build(resources) as manager:
                started = asyncio.Event()

                async def slow(resource: Resource) -> None:
                    started.set()
                    try:
                        await asyncio.sleep(30)
                    except asyncio.CancelledError:
                        seen.append(f"cancelled on {resource.rid}")
                        raise

                caller = asyncio.create_task(manager.queue_task(slow))
                await started.wait()
                caller.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await caller

                async def rid(resource: Resource) -> int:
                    return resource.rid

                assert await manager.queue_task(rid) == 1  # the worker survived
                assert manager.stats().busy_workers == 0

        run(main)
        assert seen == ["cancelled on 1"]
        resources.assert_all_destroyed_once()

    def test_a_task_that_swallows_its_cancellation_leaves_the_worker_sound(self) -> None:
        async def main() -> None:
            async with await build(AsyncResources()) as manager:
                started = asyncio.Event()

                async def stubborn(_: Resource) -> str:
                    started.set()
                    try:
                        await asyncio.sleep(30)
                    except asyncio.CancelledError:
                        return "ignored the cancellation"
                    return "slept"

                future = manager.submit(stubborn)
                await started.wait()
                future.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await future

                async def rid(resource: Resource) -> int:
                    await asyncio.sleep(0.01)
                    return resource.rid

                assert await manager.queue_task(rid) == 1  # same worker, not cancelled again
                worker_task = manager._core.workers[0].handle
                assert worker_task.cancelling() == 0

        run(main)

    def test_wait_for_on_queue_task_times_out_and_cancels_the_task(self) -> None:
        async def main() -> None:
            async with await build(AsyncResources()) as manager:

                async def slow(_: Resource) -> None:
                    await asyncio.sleep(30)

                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(manager.queue_task(slow), 0.05)

                async def one(_: Resource) -> int:
                    return 1

                assert await manager.queue_task(one) == 1

        run(main)

    def test_a_task_raising_cancelled_error_itself_fails_only_that_task(self) -> None:
        async def main() -> None:
            async with await build(AsyncResources()) as manager:

                async def odd(_: Resource) -> None:
                    raise asyncio.CancelledError  # not a cancellation of the worker

                with pytest.raises(asyncio.CancelledError):
                    await manager.queue_task(odd)

                async def rid(resource: Resource) -> int:
                    return resource.rid

                assert await manager.queue_task(rid) == 1  # the worker is still there
                assert manager.stats().active_workers == 1

        run(main)

    def test_sleep_is_for_thread_tasks(self) -> None:
        async def main() -> None:
            async with await build(AsyncResources()) as manager:

                async def sleepy(_: Resource) -> bool:
                    task = current_task()
                    assert task is not None
                    return task.sleep(0.01)

                with pytest.raises(TypeError, match=r"asyncio\.sleep"):
                    await manager.queue_task(sleepy)

        run(main)


class TestLoop:
    def test_building_outside_a_running_loop_is_a_clear_error(self) -> None:
        with pytest.raises(RuntimeError, match="inside a running event loop"):
            AsyncTaskManager.builder().build()

    def test_nothing_blocks_the_loop(self, monkeypatch: pytest.MonkeyPatch) -> None:
        resources = AsyncResources()
        blocking = _BlockingCalls(monkeypatch)

        async def main() -> None:
            manager = await (
                AsyncTaskManager.builder()
                .with_resource(resources.acreate, resources.adestroy)
                .with_workers(4, max_workers=8)
                .with_policy("rate", interval=0.01)
                .build()
            )

            async def work(resource: Resource) -> int:
                await asyncio.sleep(0.001)
                return resource.rid

            futures = []
            for _ in range(25):
                futures += [manager.submit(work) for _ in range(20)]
                await asyncio.sleep(0)
            await asyncio.gather(*futures)
            await manager.stop()

        with blocking.watching():
            run(main)
        # the manager's workers and supervisor never call a blocking wait on the loop's thread
        assert blocking.calls == []
        resources.assert_all_destroyed_once()

    def test_the_blocking_call_detector_sees_a_blocking_task(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        blocking = _BlockingCalls(monkeypatch)

        async def main() -> None:
            manager = await build(AsyncResources())

            async def blocks(resource: Resource) -> None:
                threading.Event().wait(0)

            await manager.submit(blocks)
            await manager.stop()

        with blocking.watching():
            run(main)
        assert "Event.wait" in blocking.calls

    @pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
    def test_works_on_both_event_loops(self, loop: str) -> None:
        resources = AsyncResources()

        async def main() -> None:
            async with await build(resources, workers=3) as manager:

                async def double(resource: Resource) -> int:
                    await asyncio.sleep(0)
                    return resource.rid * 2

                results = await asyncio.gather(*(manager.submit(double) for _ in range(200)))
                assert set(results) <= {2, 4, 6}
                assert await manager.run_task(double) > 0

        run(main, loop)
        resources.assert_all_destroyed_once()

    def test_using_the_manager_off_its_loop_is_a_clear_error(self) -> None:
        async def main() -> None:
            async with await build(AsyncResources()) as manager:

                async def one(_: Resource) -> int:
                    return 1

                errors: list[BaseException] = []

                def elsewhere() -> None:
                    try:
                        manager.submit(one)
                    except RuntimeError as error:
                        errors.append(error)

                await asyncio.to_thread(elsewhere)
                assert errors
                assert "event loop it was built on" in str(errors[0])
                loop = asyncio.get_running_loop()
                result = await asyncio.to_thread(
                    lambda: asyncio.run_coroutine_threadsafe(manager.queue_task(one), loop).result(
                        10
                    )
                )
                assert result == 1

        run(main)

    def test_a_manager_outliving_its_loop_refuses_a_later_loop(self) -> None:
        """Same thread, another loop: the check must not trust the thread alone."""
        managers: list[Any] = []

        async def first() -> None:
            manager = await build(AsyncResources())
            managers.append(manager)
            await manager.queue_task(lambda _: asyncio.sleep(0))
            await manager.stop(10)

        async def second() -> None:
            with pytest.raises(RuntimeError, match="event loop it was built on"):
                managers[0].submit(lambda _: asyncio.sleep(0))

        run(first)
        run(second)

    @pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
    def test_a_loop_running_in_another_thread_refuses_this_one(self, kind: str) -> None:
        """Built here, then run by another thread: this thread, loop or none, is refused."""
        loop = uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()

        async def job(_: Resource) -> int:
            return 1

        async def from_another_loop() -> None:
            with pytest.raises(RuntimeError, match="event loop it was built on"):
                manager.submit(job)

        async def make() -> Any:
            return await build(AsyncResources())

        try:
            manager = loop.run_until_complete(make())
            runner = threading.Thread(target=loop.run_forever)
            runner.start()
            try:
                with pytest.raises(RuntimeError, match="event loop it was built on"):
                    manager.submit(job)  # no loop runs in this thread
                asyncio.run(from_another_loop())
                done = asyncio.run_coroutine_threadsafe(manager.queue_task(job), loop)
                assert done.result(10) == 1  # its own loop still may
                assert asyncio.run_coroutine_threadsafe(manager.stop(10), loop).result(10)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                runner.join(10)
        finally:
            loop.close()

    @pytest.mark.parametrize("kind", ["returning", "raising", "with a timeout"])
    def test_a_backlog_of_quick_tasks_lets_the_loop_run(self, kind: str) -> None:
        """Tasks that never suspend still give the rest of the program regular turns."""

        async def main() -> None:
            builder = (
                AsyncTaskManager.builder()
                .with_workers(1, max_workers=1)
                .with_policy("fixed")
                .with_timeout(5 if kind == "with a timeout" else None)
            )
            async with await builder.build() as manager:
                ticked = asyncio.Event()
                seen: list[bool] = []

                async def quick(_: None) -> None:
                    seen.append(ticked.is_set())
                    if kind == "raising":
                        raise ValueError("quick failure")

                futures = [manager.submit(quick) for _ in range(1000)]
                asyncio.get_running_loop().call_soon(ticked.set)  # after the worker's wake-up
                await asyncio.gather(*futures, return_exceptions=True)
                assert not seen[0]
                assert seen[-1]  # the callback ran while the backlog was being worked off
                assert seen.index(True) <= 64

        run(main)

    @pytest.mark.parametrize("ending", ["returns", "raises", "plain function"])
    def test_a_task_cancelling_itself_leaves_the_next_task_alone(self, ending: str) -> None:
        """The cancellation of a task that never suspends again must not hit the next one."""

        async def main() -> None:
            async with await build(AsyncResources()) as manager:
                futures: list[asyncio.Future[Any]] = []

                def cancel_myself() -> str:
                    futures[0].cancel()
                    if ending == "raises":
                        raise ValueError("after cancelling itself")
                    return "ignored"

                async def coroutine(_: Resource) -> str:
                    return cancel_myself()

                async def suspending(_: Resource) -> str:
                    await asyncio.sleep(0.001)
                    return "next"

                futures.append(
                    manager.submit(
                        (lambda _: cancel_myself()) if ending == "plain function" else coroutine
                    )
                )
                futures.append(manager.submit(suspending))
                assert await asyncio.wait_for(futures[1], 10) == "next"
                assert futures[0].cancelled()
                assert await manager.queue_task(suspending) == "next"
                assert manager.stats().queued_tasks == 0

        run(main)

    def test_idle_waits_leave_nothing_behind(self) -> None:
        async def main() -> None:
            policy_target = 2

            class KeepTwo:
                interval = 0.005

                def target_workers(self, snapshot: object) -> int:
                    return policy_target

            manager = await (
                AsyncTaskManager.builder()
                .with_workers(1, max_workers=2)
                .with_policy(KeepTwo())
                .build()
            )
            for _ in range(200):
                if manager.stats().burst_workers == 1:
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.2)  # the idle burst worker times out ~40 times meanwhile
            channel = manager._core.queue.channel
            assert len(channel._waiters) <= 2  # type: ignore[attr-defined]
            await manager.stop()

        run(main)

    def test_stop_from_inside_a_task_does_not_deadlock(self) -> None:
        async def main() -> None:
            manager = await build(AsyncResources())

            async def stopper(_: Resource) -> bool:
                stopped: bool = await manager.stop()
                return stopped

            assert await manager.queue_task(stopper) is False
            assert await manager.join(10)

        run(main)

    def test_sync_hooks_are_accepted_and_a_plain_task_is_a_clear_error(self) -> None:
        resources = Resources()

        async def main() -> None:
            async with (
                AsyncTaskManager.builder()
                .with_resource(resources.create, resources.destroy)
                .build() as manager
            ):
                with pytest.raises(TypeError, match=r"not an awaitable: AsyncTaskManager runs"):
                    await manager.queue_task(lambda r: r.rid)  # type: ignore[arg-type, return-value]
                assert await manager.queue_task(_rid) == resources.created[-1].rid

        run(main)
        resources.assert_all_destroyed_once()


async def _rid(resource: Resource) -> int:
    return resource.rid


class TestTyping:
    def test_the_builders_give_each_manager_its_own_api(self) -> None:
        thread_builder = TaskManager.builder().with_workers(2)
        async_builder = thread_builder.with_executor("asyncio")
        assert_type(async_builder, AsyncTaskManagerBuilder[None])
        assert isinstance(async_builder, AsyncTaskManagerBuilder)
        assert async_builder._workers == 2  # options carry over

        async def main() -> None:
            manager = await async_builder.build()
            assert_type(manager, AsyncTaskManager[None])

            async def answer(_: None) -> int:
                return 42

            future = manager.submit(answer)
            assert_type(future, asyncio.Future[int])
            assert type(future).__name__ == AsyncTaskFuture.__name__
            assert_type(await future, int)
            assert_type(await manager.queue_task(answer), int)

            async def label(_: None, name: str, n: int) -> str:
                return f"{name}-{n}"

            labelled = manager.submit(label, "job", 3)
            assert_type(labelled, asyncio.Future[str])
            assert await labelled == "job-3"
            if TYPE_CHECKING:  # arguments are checked against the task's signature
                manager.submit(label, 3, "job")  # type: ignore[arg-type]
                manager.submit(label, "job")  # type: ignore[arg-type]
            await manager.stop()

        run(main)

    def test_thread_submit_types_its_extra_arguments(self) -> None:
        def label(_: None, name: str, n: int) -> str:
            return f"{name}-{n}"

        with TaskManager.builder().build() as manager:
            future = manager.submit(label, "job", 3, priority=True)
            assert_type(future, Future[str])
            assert future.result(10) == "job-3"
            if TYPE_CHECKING:
                manager.submit(label, 3, "job")  # type: ignore[arg-type]

    def test_an_async_builder_refuses_thread_executors(self) -> None:
        with pytest.raises(ValueError, match="asyncio executor"):
            AsyncTaskManager.builder().with_executor("thread")

    def test_cancelled_error_is_the_futures_one(self) -> None:
        assert issubclass(CancelledError, Exception)
